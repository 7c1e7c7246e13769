"""Idle workers: what N idle `fleet worker` processes cost one Redis, this tree vs another revision.

For each N (5, 20, 50, 100 by default) and each tree, a flushed private redis-server gets a
manifest of held jobs over 20 classes (so every worker has classes to consider and none to
claim) and 1,000 stale worker records (stopped or dead an hour ago), then N real idle
workers on simulated hosts (a mix of GPU and CPU profiles). Once they have settled, the
bench samples, over a window: Redis's commands/s (INFO stats), Redis's CPU (INFO cpu) and
the workers' own CPU (psutil), each per worker. Trees are interleaved at each N, so a
noisy neighbour slows both alike. Targets (issue 18): per-worker cost flat (100 vs 5
within 1.3x), at most 15 commands/s per idle worker, 1,000 workers < 10% of a Redis core.

usage: python bench/idle_workers.py [--against 5307453] [--workers 5,20,50,100] [--window 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import psutil
from common import REPO, build_manifest, machine, store_on

from scheduler.embedded_redis import RedisServer
from scheduler.resources import HostResources

STALE_RECORDS = 1000
PROFILES = {
    "gpu": 'hostname = "{name}"\ncuda = true\ncores = 32\nram_gib = 256\n'
           '[[gpus]]\nname = "NVIDIA A100-SXM4-80GB"\nvram_gib = 80\n[[gpus]]\nname = "NVIDIA A100-SXM4-80GB"\n'
           'vram_gib = 80\n',
    "cpu": 'hostname = "{name}"\ncuda = false\ncores = 64\nram_gib = 512\n',
}


def tree_at(revision: str, tmp: str) -> str:
    """A checkout of ``revision`` to run the other side's workers from."""
    path = os.path.join(tmp, f"tree-{revision}")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-f", path, revision], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def seed(url: str) -> None:
    """Held jobs over 20 classes and STALE_RECORDS worker records an hour old."""
    store = store_on(url)
    plan = store.load(build_manifest({"schema_version": 1, "jobs": [
        {"name": f"j{i}", "model": "idle", "seed": i, "min_ram_gib": 1 + i % 10,
         "require_cuda": i % 2 == 0} for i in range(200)]}))
    store.apply_action("hold", [e.job_id for e in plan.added])
    then = time.time() - 3600
    pipe = store.redis.pipeline(transaction=False)
    for i in range(STALE_RECORDS):
        name = f"gone{i}"
        resources = HostResources(f"gone{i}", cores=16, ram_total_gib=64.0, ram_available_gib=64.0).to_dict()
        pipe.hset(store.keys.worker(name), mapping={
            "name": name, "host": f"gone{i}", "pid": 1, "resources": json.dumps(resources),
            "state": "stopped" if i % 2 else "idle", "heartbeat": repr(then), "lease_s": "30"})
        pipe.zadd(store.keys.workers, {name: then})
    pipe.execute()


def start_workers(url: str, tree: str, n: int, tmp: str) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        kind = "gpu" if i % 2 else "cpu"
        profile = os.path.join(tmp, f"host{i}.toml")
        with open(profile, "w") as fh:
            fh.write(PROFILES[kind].format(name=f"h{i}"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "worker", "--host-profile", profile, "--name", f"w{i}",
             "--runs-dir", os.path.join(tmp, "runs")], cwd=tree,
            env=dict(os.environ, FLEET_REDIS_URL=url, PYTHONPATH=tree),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def redis_counters(client) -> tuple[int, float]:
    stats, cpu = client.info("stats"), client.info("cpu")
    return int(stats["total_commands_processed"]), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure(url: str, tree: str, n: int, window_s: float, tmp: str) -> dict:
    client = store_on(url).redis
    client.flushall()
    seed(url)
    procs = start_workers(url, tree, n, tmp)
    try:
        deadline = time.time() + 120
        workers_key = store_on(url).keys.workers
        while client.zcount(workers_key, time.time() - 5, "+inf") < n:
            if time.time() > deadline:
                raise SystemExit(f"only some of {n} workers registered within 120 s")
            time.sleep(0.5)
        time.sleep(5)  # past start-up: every worker in its idle loop
        handles = [psutil.Process(p.pid) for p in procs]
        cmds0, cpu0 = redis_counters(client)
        wcpu0 = sum(sum(h.cpu_times()[:2]) for h in handles)
        t0 = time.perf_counter()
        time.sleep(window_s)
        elapsed = time.perf_counter() - t0
        cmds1, cpu1 = redis_counters(client)
        wcpu1 = sum(sum(h.cpu_times()[:2]) for h in handles)
    finally:
        stop(procs)
    return {"cmds_per_worker": (cmds1 - cmds0) / elapsed / n, "redis_cpu_pct_per_worker":
            100 * (cpu1 - cpu0) / elapsed / n, "worker_cpu_pct": 100 * (wcpu1 - wcpu0) / elapsed / n,
            "cmds": (cmds1 - cmds0) / elapsed, "redis_cpu_pct": 100 * (cpu1 - cpu0) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="5307453", help="the revision to compare with ('' for none)")
    parser.add_argument("--workers", default="5,20,50,100")
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"idle workers, {STALE_RECORDS} stale records, {args.window:g} s windows ({machine()})")
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": REPO}
        if args.against:
            trees[args.against] = tree_at(args.against, tmp)
        results: dict[tuple[str, int], dict] = {}
        try:
            for n in counts:
                for label, tree in trees.items():
                    results[(label, n)] = r = measure(server.url, tree, n, args.window, tmp)
                    print(f"  {label:>10s} N={n:<4d} {r['cmds']:9.0f} cmds/s  {r['cmds_per_worker']:7.1f}/worker  "
                          f"redis {r['redis_cpu_pct']:5.1f}% ({r['redis_cpu_pct_per_worker']:.3f}%/worker)  "
                          f"worker cpu {r['worker_cpu_pct']:.2f}% each", flush=True)
        finally:
            if args.against:
                subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", trees[args.against]],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lo, hi = counts[0], counts[-1]
        for label in trees:
            a, b = results[(label, lo)], results[(label, hi)]
            per_core_1000 = b["redis_cpu_pct_per_worker"] * 1000
            print(f"  {label}: per-worker cmds N={hi} vs N={lo}: {b['cmds_per_worker'] / a['cmds_per_worker']:.2f}x, "
                  f"redis cpu per worker {b['redis_cpu_pct_per_worker'] / max(a['redis_cpu_pct_per_worker'], 1e-9):.2f}x;"
                  f" 1,000 workers ~{per_core_1000:.0f}% of a Redis core (from N={hi})")


if __name__ == "__main__":
    main()
