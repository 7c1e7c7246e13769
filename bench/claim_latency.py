"""Claim latency: a job loaded into an idle fleet -> claimed by a worker -> its process started.

One real `fleet worker` process (simulated host) idles on a private redis-server;
each round loads one new job with `Store.load` and reads when it was claimed
(attempt record) and when its command started (the command writes the time).
The worker's heartbeat is 10 s (30 s lease), so anything well under that is the
events stream waking it, not polling.

usage: python bench/claim_latency.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import REPO, build_manifest, machine, stats_ms, store_on

from scheduler.embedded_redis import RedisServer



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"claim latency ({machine()}), {args.rounds} rounds, one idle worker")
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        store = store_on(server.url)
        profile = os.path.join(tmp, "host.toml")
        with open(profile, "w") as fh:
            fh.write('hostname = "bench"\ncuda = false\ncores = 8\nram_gib = 32\n')
        stamp = os.path.join(tmp, "started-{job_id}")
        command = [sys.executable, "-c", f"import time; open({stamp!r}.format(job_id='{{job_id}}'), 'w')"
                                         f".write(repr(time.time()))"]
        worker = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "worker", "--host-profile", profile,
                                   "--runs-dir", os.path.join(tmp, "runs"), "--lease-s", "30"],
                                  env=dict(os.environ, FLEET_REDIS_URL=server.url, PYTHONPATH=REPO),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while not store.redis.zcard(store.keys.workers):
                time.sleep(0.05)
            jobs, claim_lat, start_lat = [], [], []
            for i in range(args.rounds):
                time.sleep(0.2)  # let the worker go back to blocking on the events stream
                jobs.append({"name": f"j{i}", "model": "bench", "seed": i, "command": command, "min_cores": 0})
                manifest = build_manifest({"schema_version": 1, "jobs": jobs})
                t0 = time.time()
                store.load(manifest)
                job_id = manifest.jobs[-1].job_id
                path = stamp.format(job_id=job_id)
                deadline = time.time() + 30
                while not os.path.exists(path) or not open(path).read():
                    if time.time() > deadline:
                        raise SystemExit(f"job {job_id} did not start within 30 s")
                    time.sleep(0.002)
                started = float(open(path).read())
                attempt = json.loads(store.redis.lindex(store.keys.attempts(job_id), 0))
                claim_lat.append(attempt["started_at"] - t0)
                start_lat.append(started - t0)
            for label, samples in (("loaded -> claimed", claim_lat), ("loaded -> command running", start_lat)):
                median, p99 = stats_ms(samples)
                print(f"  {label:<28} median {median:7.1f} ms   p99 {p99:7.1f} ms")
        finally:
            os.killpg(worker.pid, 9)
            worker.wait()


if __name__ == "__main__":
    main()
