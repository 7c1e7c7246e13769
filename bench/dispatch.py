"""Dispatch overhead: N no-op jobs end to end through one fleet worker vs plain rq, same Redis.

fleet: `fleet load` of N jobs whose command is /bin/true, then one `fleet worker --burst`.
rq:    `Queue.enqueue_many` of N no-op functions, then one `rq` Worker (forking, like
       fleet's) in burst mode. Both fork a work horse per job; fleet's horse also
       execs the job's command in its own process group, which plain rq does not.
A second rq baseline runs a function that execs /bin/true, the same work a fleet horse
does for a command job, so the ratio against it is fleet's own cost (matching, leases,
attempt records, log and artifact capture) on top of rq.
fleet runs four ways, to split its cost into parts:
  - as shipped, its runs dir on the disk the temp dir is on;
  - the same with the runs dir on tmpfs (/dev/shm): each attempt makes two directories and
    writes four small files (job.json, log.txt, attempt.json, artifacts.json), which rq
    does not, and creating files costs far more on a disk than on tmpfs;
  - its horse only execs the command, writing none of those files (bench/stripped_worker.py);
  - its horse does nothing at all: fleet's dispatch alone (claim, lease, rq's records, finish),
    the part the target's "matching must cost almost nothing" is about.
Prints jobs/s for each and the ratios against both rq baselines (target >= 0.9x rq).

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

from common import REPO, build_manifest, machine, store_on

from scheduler.embedded_redis import RedisServer

BENCH = os.path.dirname(os.path.abspath(__file__))


def fleet_rate(url: str, n: int, tmp: str, horse: str = "") -> float:
    """jobs/s of one burst worker; ``horse``: run bench/stripped_worker.py's horse of that name."""
    store = store_on(url)
    manifest = build_manifest({"schema_version": 1, "defaults": {"command": ["true"], "min_cores": 0},
                               "jobs": [{"name": f"j{i}", "model": "noop", "seed": i} for i in range(n)]})
    store.load(manifest)
    profile = os.path.join(tmp, "host.toml")
    with open(profile, "w") as fh:
        fh.write('hostname = "bench"\ncuda = false\ncores = 8\nram_gib = 32\n')
    program = [os.path.join(BENCH, "stripped_worker.py")] if horse else ["-m", "scheduler.cli"]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *program, "worker", "--burst", "--host-profile", profile,
                    "--runs-dir", os.path.join(tmp, "runs")], check=True,
                   env=dict(os.environ, FLEET_REDIS_URL=url, PYTHONPATH=REPO, FLEET_BENCH_HORSE=horse),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def _fleet_run(url: str, n: int, runs_on: str | None = None, horse: str = "") -> float:
    with tempfile.TemporaryDirectory(dir=runs_on) as tmp:
        return fleet_rate(url, n, tmp, horse)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"dispatch of {args.jobs} no-op jobs, one worker each ({machine()})")
    setups = {"rq": lambda url: rq_rate(url, args.jobs),
              "rq_exec": lambda url: rq_rate(url, args.jobs, "noop.run_true"),
              "fleet": lambda url: _fleet_run(url, args.jobs),
              "fleet_command_only": lambda url: _fleet_run(url, args.jobs, horse="command"),
              "fleet_dispatch_only": lambda url: _fleet_run(url, args.jobs, horse="nothing")}
    if os.path.isdir(TMPFS) and os.access(TMPFS, os.W_OK):
        setups["fleet_tmpfs"] = lambda url: _fleet_run(url, args.jobs, TMPFS)
    runs: dict[str, list[float]] = {kind: [] for kind in setups}
    with RedisServer() as server:
        for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits all of them alike
            for kind, rate in setups.items():
                server.client().flushall()
                runs[kind].append(rate(server.url))
    rates = {kind: statistics.median(values) for kind, values in runs.items()}
    rq, rq_exec = rates["rq"], rates["rq_exec"]
    labels = {"rq": "plain rq Worker, no-op function", "rq_exec": "plain rq Worker, function that execs /bin/true",
              "fleet": "fleet worker, command /bin/true",
              "fleet_tmpfs": "  the same, runs dir on tmpfs",
              "fleet_command_only": "  its horse only execs the command (no files)",
              "fleet_dispatch_only": "  its horse does nothing (fleet's dispatch alone)"}
    print(f"  medians of {args.repeats} interleaved runs each, {args.jobs} jobs a run (process start included)")
    print(f"  {'':48s} {'jobs/s':>7s} {'ms/job':>7s} {'/ rq':>6s} {'/ rq exec':>9s}")
    for kind in ("rq", "rq_exec", "fleet", "fleet_tmpfs", "fleet_command_only", "fleet_dispatch_only"):
        if kind in rates:
            rate = rates[kind]
            print(f"  {labels[kind]:48s} {rate:7.1f} {1000 / rate:7.2f} {rate / rq:5.2f}x {rate / rq_exec:8.2f}x")
    print("  target: fleet / rq >= 0.9x; each step down the fleet rows removes one part of a job's cost")


if __name__ == "__main__":
    main()
