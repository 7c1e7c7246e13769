"""Dispatch overhead: N no-op jobs end to end through one fleet worker vs plain rq, same Redis.

fleet: `fleet load` of N jobs whose command is /bin/true, then one `fleet worker --burst`.
rq:    `Queue.enqueue_many` of N no-op functions, then one `rq` Worker (forking, like
       fleet's) in burst mode. Both fork a work horse per job; fleet's horse also
       execs the job's command in its own process group, which plain rq does not.
A second rq baseline runs a function that execs /bin/true, the same work a fleet horse
does for a command job, so the ratio against it is fleet's own cost (matching, leases,
attempt records, log and artifact capture) on top of rq.
fleet runs twice: with its runs dir on the disk the temp dir is on, and on tmpfs
(/dev/shm). Each attempt makes two directories and writes four small files there
(job.json, log.txt, attempt.json, artifacts.json), which rq does not; on a disk whose
metadata operations are slow (this project's VM: ~0.45 ms each, 30x tmpfs) that
alone is several ms a job, so the second run shows what dispatch itself costs.
Prints jobs/s for each and fleet/rq (target >= 0.9x).

usage: python bench/dispatch.py [--jobs 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import build_manifest, machine, store_on

from scheduler.embedded_redis import RedisServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.dirname(os.path.abspath(__file__))


def fleet_rate(url: str, n: int, tmp: str) -> float:
    store = store_on(url)
    manifest = build_manifest({"schema_version": 1, "defaults": {"command": ["true"], "min_cores": 0},
                               "jobs": [{"name": f"j{i}", "model": "noop", "seed": i} for i in range(n)]})
    store.load(manifest)
    profile = os.path.join(tmp, "host.toml")
    with open(profile, "w") as fh:
        fh.write('hostname = "bench"\ncuda = false\ncores = 8\nram_gib = 32\n')
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scheduler.cli", "worker", "--burst", "--host-profile", profile,
                    "--runs-dir", os.path.join(tmp, "runs")], check=True,
                   env=dict(os.environ, FLEET_REDIS_URL=url, PYTHONPATH=REPO), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    assert store.jobs.counts()["finished"] == n
    return n / elapsed


def rq_rate(url: str, n: int, func: str = "noop.noop") -> float:
    code = f"""
import sys, time
sys.path.insert(0, {BENCH!r})
from redis import Redis
from rq import Queue, Worker
r = Redis.from_url({url!r})
q = Queue("plain", connection=r)
q.enqueue_many([Queue.prepare_data({func!r}, result_ttl=-1) for _ in range({n})])
t0 = time.perf_counter()
Worker([q], connection=r).work(burst=True, logging_level="WARNING")
print(time.perf_counter() - t0)
"""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=BENCH))
    elapsed = time.perf_counter() - t0
    return n / elapsed


TMPFS = "/dev/shm"


def _fleet_run(url: str, n: int, runs_on: str | None = None) -> float:
    with tempfile.TemporaryDirectory(dir=runs_on) as tmp:
        return fleet_rate(url, n, tmp)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"dispatch of {args.jobs} no-op jobs, one worker each ({machine()})")
    setups = {"rq": lambda url: rq_rate(url, args.jobs),
              "rq_exec": lambda url: rq_rate(url, args.jobs, "noop.run_true"),
              "fleet": lambda url: _fleet_run(url, args.jobs)}
    if os.path.isdir(TMPFS) and os.access(TMPFS, os.W_OK):
        setups["fleet_tmpfs"] = lambda url: _fleet_run(url, args.jobs, TMPFS)
    runs: dict[str, list[float]] = {kind: [] for kind in setups}
    with RedisServer() as server:
        for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits all of them alike
            for kind, rate in setups.items():
                server.client().flushall()
                runs[kind].append(rate(server.url))
        rq, rq_exec, fleet = (statistics.median(runs[k]) for k in ("rq", "rq_exec", "fleet"))
        print(f"  medians of {args.repeats} interleaved runs each")
        print(f"  plain rq Worker, no-op function:               {rq:7.1f} jobs/s  (process start included)")
        print(f"  plain rq Worker, function that execs /bin/true: {rq_exec:7.1f} jobs/s")
        print(f"  fleet worker, command /bin/true:                {fleet:7.1f} jobs/s")
        print(f"  fleet / rq no-op: {fleet / rq:.2f}x   fleet / rq exec: {fleet / rq_exec:.2f}x "
              f"(the second is what matching, leases and records cost on top of rq)")
        if "fleet_tmpfs" in runs:
            tmpfs = statistics.median(runs["fleet_tmpfs"])
            print(f"  fleet worker, runs dir on tmpfs:                {tmpfs:7.1f} jobs/s")
            print(f"  fleet on tmpfs / rq no-op: {tmpfs / rq:.2f}x   / rq exec: {tmpfs / rq_exec:.2f}x "
                  f"(without the cost of this disk's metadata operations)")


if __name__ == "__main__":
    main()
