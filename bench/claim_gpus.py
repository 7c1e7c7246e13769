"""Claim cost of a 4-GPU job against a 1-GPU one, at the same backlog, on one private redis-server.

Two namespaces on one server, each N pending jobs over 50 classes on an 8-GPU host in two
NVLink islands: in one every job needs 1 GPU (sharing it, 8 GiB), in the other 4 GPUs held
whole. Each claim is ended at once (finish.lua gives the GPUs back), so every claim meets
the same free host; the two backlogs' claims alternate in rounds, so this VM's swings fall
on both alike. Prints the median claim time and its time inside Redis for each, and the
ratio 4-GPU / 1-GPU (target: within 1.2x).

usage: python bench/claim_gpus.py [--jobs 10000] [--claims 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import build_manifest, machine, stats_ms, store_on

from scheduler.embedded_redis import RedisServer
from scheduler.matching import ConstraintClass
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import Outcome
from scheduler.store.claims import Claims

HOST = HostResources("bench", cores=10**6, ram_total_gib=10**9, ram_available_gib=10**9,
                     gpus=tuple(GpuInfo(i, "NVIDIA H100 80GB HBM3", 80.0, 80.0, uuid=f"GPU-{i:02d}",
                                        compute_capability="9.0") for i in range(8)),
                     links=tuple((a, b, "nvlink") for island in ((0, 1, 2, 3), (4, 5, 6, 7))
                                 for a in island for b in island if a < b))
WORKLOADS = {"1 GPU, shared (min_vram_gib 8)": {"gpus": 1, "min_vram_gib": 8},
             "4 GPUs, whole": {"gpus": 4}}


def backlog(url: str, namespace: str, need: dict, n: int):
    """Load ``n`` jobs needing ``need`` over 50 classes; returns a function that claims one,
    ends it, and returns how long the claim alone took."""
    store = store_on(url, namespace=namespace)
    jobs = [{"name": f"j{i}", "model": "bench", "seed": i, "min_ram_gib": 1 + i % 50, "min_cores": 0, **need}
            for i in range(n)]
    manifest = build_manifest({"schema_version": 1, "jobs": jobs})
    store.load(manifest)
    classes = list({c.class_id: c for c in (ConstraintClass.of(j, {}) for j in manifest.jobs)}.values())
    claims = Claims(store.redis, store.keys)

    def one() -> float:
        t0 = time.perf_counter()
        claim = claims.claim("bench", HOST, classes)
        took = time.perf_counter() - t0
        if claim is None:
            raise SystemExit(f"claim_gpus: nothing claimable in {namespace}")
        # Requeued, so the backlog never runs out; the GPUs go back for the next claim.
        claims.complete(claim.job_id, claim.attempt, "bench", Outcome.INTERRUPTED)
        return took

    return store, one


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    server = RedisServer()
    try:
        runs = {label: backlog(server.url, f"g{i}", need, args.jobs)
                for i, (label, need) in enumerate(WORKLOADS.items())}
        time.sleep(2.0)  # let Redis settle after the loads (it rehashes its main dictionary)
        samples = {label: [] for label in runs}
        inside = {label: [] for label in runs}
        for round_no in range(args.rounds):
            order = list(runs) if round_no % 2 == 0 else list(runs)[::-1]
            for label in order:
                store, one = runs[label]
                store.redis.config_resetstat()
                samples[label] += [one() for _ in range(args.claims // args.rounds)]
                # Mean per script call since the reset: the claim and the finish that ends it.
                inside[label].append(store.redis.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
        print(f"claim of a multi-GPU job vs a 1-GPU one ({machine()}), {args.jobs} pending, 8 GPUs in two NVLink "
              f"islands, medians of {args.rounds} interleaved rounds")
        medians = {}
        for label in runs:
            median, p99 = stats_ms(samples[label])
            medians[label] = median
            print(f"  {label:32s} median {median:.3f} ms  p99 {p99:.3f} ms  (claim + finish inside Redis "
                  f"{statistics.median(inside[label]):.1f} us per script call)")
        one_gpu, four = medians.values()
        print(f"  4 GPUs / 1 GPU: {four / one_gpu:.2f}x (target <= 1.2x)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
