"""Reload: a 10,000-job manifest into an empty store, then an unchanged reload, vs rq enqueue_many.

The baseline enqueues the same 10,000 jobs with rq's ``Queue.enqueue_many`` in one
pipeline on the same Redis. fleet's first load must be within 1.5x of it; the
unchanged reload must write zero keys, shown with ``INFO commandstats`` (no write
command is counted) and ``rdb_changes_since_last_save`` (Redis's own write counter).

usage: python bench/reload.py [--jobs 10000]
"""

from __future__ import annotations

import argparse

from common import build_manifest, jobs_manifest, machine, store_on, timed

from scheduler.embedded_redis import RedisServer

WRITES = ("hset", "set", "zadd", "sadd", "srem", "zrem", "del", "xadd", "incr", "hdel", "rpush", "lset",
          "hincrbyfloat", "hincrby", "expire")


def write_calls(client) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.replace("cmdstat_", "") in WRITES)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    print(f"reload of {args.jobs} jobs ({machine()})")
    data = jobs_manifest(args.jobs)
    with RedisServer() as server:
        store = store_on(server.url)
        from rq import Queue

        queue = Queue("baseline", connection=store.redis)
        jobs = [Queue.prepare_data("noop.noop", job_id=f"b{i}", description=f"j{i}", result_ttl=-1)
                for i in range(args.jobs)]
        _, rq_s = timed(queue.enqueue_many, jobs)
        store.redis.flushall()

        (manifest, validate_s) = timed(build_manifest, data)
        _, first_s = timed(store.load, manifest)
        store.redis.config_resetstat()
        before_dirty = store.redis.info("persistence")["rdb_changes_since_last_save"]
        plan, second_s = timed(store.load, manifest)
        after_dirty = store.redis.info("persistence")["rdb_changes_since_last_save"]
        print(f"  rq enqueue_many (one pipeline):     {rq_s:6.2f} s")
        print(f"  fleet first load (in short steps):  {first_s:6.2f} s  = {first_s / rq_s:.2f}x rq "
              f"(validation before it: {validate_s:.2f} s)")
        print(f"  fleet unchanged reload:             {second_s:6.2f} s  changed={plan.changed}; "
              f"write commands {write_calls(store.redis)}, keys dirtied {after_dirty - before_dirty}")


if __name__ == "__main__":
    main()
