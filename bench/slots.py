"""Slots: jobs that sleep 50 ms through one `fleet worker --slots 4` vs `--slots 1`, same Redis.

Each run loads N jobs whose command is `sleep 0.05` (one core each, on a simulated
8-core host) into a flushed private redis-server and runs one `fleet worker --burst`.
Two rates per run: steady (N over the first attempt's start to the last one's end, from
fleet's attempt records: what a long-running service sustains) and whole (N over the
worker's start to its exit, process start, forks and the burst's end included). Runs
of both kinds are interleaved, so a noisy neighbour slows both alike; medians are
printed with the ratios. Target: --slots 4 >= 3x the jobs/s of --slots 1.

usage: python bench/slots.py [--jobs 200] [--repeats 3] [--slots 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from common import build_manifest, machine, run_burst_worker, store_on

from scheduler.embedded_redis import RedisServer

def rate(url: str, jobs: int, slots: int, tmp: str) -> tuple[float, float]:
    """(steady, whole) jobs/s of one burst worker with ``slots`` slots over ``jobs`` fresh 50 ms jobs."""
    store = store_on(url)
    store.load(build_manifest({"schema_version": 1, "defaults": {"command": ["sleep", "0.05"], "min_cores": 1},
                               "jobs": [{"name": f"j{i}", "model": "nap", "seed": i} for i in range(jobs)]}))
    t0 = time.perf_counter()
    run_burst_worker(url, tmp, slots, f"bench-{slots}")
    elapsed = time.perf_counter() - t0
    assert store.jobs.counts()["finished"] == jobs
    attempts = [a for job_id in store.jobs.list_ids(limit=jobs) for a in store.claims().attempts(job_id)]
    span = max(a["ended_at"] for a in attempts) - min(a["started_at"] for a in attempts)
    return jobs / span, jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    print(f"slots: {args.jobs} jobs of `sleep 0.05` through one burst worker ({machine()})")
    runs: dict[int, list[tuple[float, float]]] = {1: [], args.slots: []}
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for slots in runs:
                server.client().flushall()
                runs[slots].append(rate(server.url, args.jobs, slots, tmp))
    print(f"  medians of {args.repeats} interleaved runs each; jobs/s   steady   whole run")
    medians = {}
    for slots, values in runs.items():
        medians[slots] = [statistics.median(v[i] for v in values) for i in (0, 1)]
        print(f"  --slots {slots:<3d} {medians[slots][0]:24.1f} {medians[slots][1]:11.1f}")
    one, many = medians[1], medians[args.slots]
    print(f"  ratio {'':17s} {many[0] / one[0]:6.2f}x {many[1] / one[1]:10.2f}x   target >= 3x with 4 slots")


if __name__ == "__main__":
    main()
