"""This tree's claim and finish scripts against another revision's, interleaved on one server.

Both pairs of scripts serve the same store (N pending jobs over 50 classes), in alternating
rounds, so the VM's swings (claim_cost.py's claims/s moved by a third between runs of the
same code) fall on both alike. Prints claims/s from one process and each script's time
inside Redis (INFO commandstats usec_per_call) for both, and the ratio this tree / REV.

usage: python bench/claim_ab.py [--against f0d4d5b] [--jobs 100000] [--rounds 12] [--claims 1000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from common import build_manifest, jobs_manifest, machine, store_on

from scheduler.embedded_redis import RedisServer
from scheduler.matching import ConstraintClass
from scheduler.resources import HostResources
from scheduler.states import Outcome
from scheduler.store.claims import Claims
from scheduler.store.scripts import INCLUDE

HOST = HostResources("bench", cores=10**6, ram_total_gib=10**9, ram_available_gib=10**9)


def script_at(revision: str, name: str) -> str:
    """``lua/<name>.lua`` as ``revision`` had it, its includes taken from the same revision."""
    def text(script: str) -> str:
        return subprocess.run(["git", "show", f"{revision}:scheduler/store/lua/{script}.lua"], check=True,
                              capture_output=True, text=True).stdout
    return INCLUDE.sub(lambda m: text(m.group(1)), text(name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="f0d4d5b")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--claims", type=int, default=1000)
    args = parser.parse_args()
    server = RedisServer()
    try:
        redis = server.client()
        manifest = build_manifest(jobs_manifest(args.jobs))
        store = store_on(server.url)
        store.load(manifest)
        classes = list({c.class_id: c for c in (ConstraintClass.of(j, manifest.hosts) for j in manifest.jobs)}.values())
        time.sleep(3)  # the load's garbage collected, as claim_cost.py waits
        ours, theirs = Claims(redis, store.keys), Claims(redis, store.keys)
        theirs.scripts.claim = redis.register_script(script_at(args.against, "claim"))
        theirs.scripts.finish = redis.register_script(script_at(args.against, "finish"))
        rate = {"this tree": [], args.against: []}
        inside = {(side, op): [] for side in rate for op in ("claim", "finish")}
        for round_no in range(args.rounds):
            sides = [("this tree", ours), (args.against, theirs)]
            for side, claims in sides if round_no % 2 == 0 else sides[::-1]:
                redis.config_resetstat()
                started = time.perf_counter()
                got = [claims.claim("w", HOST, classes) for _ in range(args.claims)]
                rate[side].append(args.claims / (time.perf_counter() - started))
                inside[(side, "claim")].append(redis.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
                redis.config_resetstat()
                for claim in got:
                    claims.complete(claim.job_id, claim.attempt, "w", Outcome.FINISHED)
                inside[(side, "finish")].append(redis.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
        med = {k: statistics.median(v) for k, v in (rate | inside).items()}
        print(f"claim and finish scripts, this tree vs {args.against} ({machine()}), {args.jobs} pending, "
              f"medians of {args.rounds} interleaved rounds of {args.claims}")
        print(f"  claims/s from one process: {med['this tree']:.0f} vs {med[args.against]:.0f} = "
              f"{med['this tree'] / med[args.against]:.2f}x")
        for op in ("claim", "finish"):
            ours_us, theirs_us = med[("this tree", op)], med[(args.against, op)]
            print(f"  {op} inside Redis: {ours_us:.1f} us vs {theirs_us:.1f} us = {ours_us / theirs_us:.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
