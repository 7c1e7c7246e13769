"""Memory: Redis bytes per pending and per finished job, by kind of key, from MEMORY USAGE.

Loads N realistic jobs (bench/load_pause.py's) into a flushed private redis-server and
sums MEMORY USAGE over the namespace's keys (pending: per job), then runs them through one
burst worker (each prints a few lines and reports two metrics, as a short training run
does) and sums again (finished: per job). Keys shared by all jobs (indexes, the registry)
are spread over the jobs, as they grow with them. Goal (issue 18): <= 4 KB per finished job.

usage: python bench/memory.py [--jobs 300]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict

from common import build_manifest, machine, run_burst_worker, store_on
from load_pause import realistic

from scheduler.embedded_redis import RedisServer

JOB_ID = re.compile(r"[0-9a-f]{16}")
SCRIPT = ("import json, os\n"  # no braces: a command's {...} are fleet's placeholders
          "for step in range(5):\n"
          "    print('epoch %d: loss %.4f' % (step, 1 / (step + 1)), flush=True)\n"
          "with open(os.environ['FLEET_METRICS'], 'a') as fh:\n"
          "    fh.write(json.dumps(dict(step=5, loss=0.2, accuracy=0.9)) + chr(10))\n")


def usage_by_kind(client) -> dict[str, int]:
    """Bytes per kind of key: the key with its job id (or attempt number) taken out."""
    kinds: dict[str, int] = defaultdict(int)
    for key in client.scan_iter(count=1000):
        kind = re.sub(r":\d+$", ":N", JOB_ID.sub("ID", key.decode()))
        kinds[kind] += client.memory_usage(key, samples=0) or 0
    return kinds


def report(title: str, kinds: dict[str, int], jobs: int) -> None:
    total = sum(kinds.values())
    print(f"  {title}: {total / jobs:7.0f} bytes per job")
    for kind, size in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]:
        print(f"      {size / jobs:7.0f}  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    print(f"memory per job, {args.jobs} jobs ({machine()})")
    data = realistic(args.jobs)
    data["defaults"]["command"] = [sys.executable, "-c", SCRIPT]
    data["defaults"].update(min_ram_gib=0, min_cores=0)
    for job in data["jobs"]:
        job["min_ram_gib"] = 0
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        store = store_on(server.url)
        store.load(build_manifest(data))
        report("pending", usage_by_kind(store.redis), args.jobs)
        run_burst_worker(server.url, tmp, 2, "mem")
        assert store.jobs.counts()["finished"] == args.jobs, store.jobs.counts()
        finished = usage_by_kind(store.redis)
        report("finished", finished, args.jobs)
        rq_kept = {k: v for k, v in finished.items() if ":rq:results:" not in k and ":rq:job:" not in k}
        streams_gone = {k: v for k, v in rq_kept.items() if not re.search(r":(log|metrics)(_text)?:", k)}
        print(f"  finished, once rq's records expire (a day): {sum(rq_kept.values()) / args.jobs:7.0f} bytes per job")
        print(f"  finished, once the log and metrics streams expire too (30 days): "
              f"{sum(streams_gone.values()) / args.jobs:7.0f} bytes per job")


if __name__ == "__main__":
    main()
