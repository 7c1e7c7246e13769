"""A long Lua script makes Redis answer BUSY to everyone else: workers wait it out.

A manifest of tens of thousands of jobs loads as one script that can run past Redis's
busy-reply threshold (5 s by default); meanwhile Redis refuses every other client with
BUSY. Here the threshold is lowered to 0.3 s and a 3 s script runs while two workers
and a receiver are busy with jobs. "Nothing lost" means: every job ends finished with
one attempt and one execution in the side-effect ledger, and no process exited.
"""

from __future__ import annotations


import redis
from support.procs import FleetProcs, assert_each_ran_once, start_receiver_and_two_workers, wait_for

from scheduler.embedded_redis import RedisServer
from support.stores import make_store

JOBS = 6
BUSY_LUA = """
local start = tonumber(redis.call('TIME')[1])
while tonumber(redis.call('TIME')[1]) < start + tonumber(ARGV[1]) do end
return 1
"""


def test_workers_and_receiver_wait_out_a_busy_redis(tmp_path, tally):
    server = RedisServer()
    procs = FleetProcs(server.url, str(tmp_path))
    try:
        store = make_store(server.client())
        receiver, workers, ledger = start_receiver_and_two_workers(procs, store, tmp_path, JOBS, sleep_s=1)

        admin = redis.Redis.from_url(server.url, socket_timeout=30)
        admin.config_set("busy-reply-threshold", 300)
        admin.eval(BUSY_LUA, 0, 3)  # everyone else gets BUSY for ~2.7 s

        wait_for(lambda: store.jobs.counts()["finished"] == JOBS, timeout_s=60, what="every job after the busy spell")
        assert_each_ran_once(store, ledger, JOBS)
        for proc in (receiver, *workers):
            assert proc.poll() is None, procs.log_of(proc)
        assert any("BusyLoadingError" in procs.log_of(w) for w in workers)  # the spell did reach them
        tally.fault("Redis answering BUSY for ~3 s")
        tally.ran(JOBS, JOBS)
    finally:
        procs.stop_all()
        server.stop()
