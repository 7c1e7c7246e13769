"""Redis stops answering for 7 s while jobs run: nothing is lost, nothing runs twice.

redis-server is frozen with SIGSTOP (connections hang rather than being refused:
the harder case, since every client call waits out its socket timeout) for 7 s,
longer than the workers' 3 s lease, while two workers run jobs and a receiver
reaps leases. "Nothing lost" means: every job ends finished with exactly one
attempt, the side-effect ledger holds exactly one execution per job, every metrics
line a job wrote is in its Redis stream (a batch in flight when Redis froze may
arrive twice: whether Redis applied it cannot be known), every job's
outputs pass ``fleet verify`` (the artifact manifests hashed during the freeze
reach Redis afterwards), and the workers and the receiver are still alive.
"""

from __future__ import annotations

import os
import signal
import time

from support.procs import FleetProcs, assert_each_ran_once, start_receiver_and_two_workers, wait_for

from scheduler.embedded_redis import RedisServer
from support.stores import make_store, metrics_file_and_stream

JOBS = 6
FROZEN_S = 7.0  # more than twice the workers' 3 s lease


def test_seven_seconds_of_silent_redis_lose_and_duplicate_nothing(tmp_path, tally):
    server = RedisServer()
    procs = FleetProcs(server.url, str(tmp_path))
    frozen = False
    try:
        store = make_store(server.client())
        receiver, workers, ledger = start_receiver_and_two_workers(procs, store, tmp_path, JOBS, sleep_s=2)

        os.kill(server.proc.pid, signal.SIGSTOP)
        frozen = True
        time.sleep(FROZEN_S)  # the running jobs end while Redis is silent; their results must wait
        os.kill(server.proc.pid, signal.SIGCONT)
        frozen = False

        wait_for(lambda: store.jobs.counts()["finished"] == JOBS, timeout_s=90, what="every job after the freeze")
        assert_each_ran_once(store, ledger, JOBS)
        for i in range(JOBS):  # no metrics line the jobs wrote during the freeze is missing from Redis
            written, streamed = metrics_file_and_stream(store, f"job-{i}")
            assert set(written) <= set(streamed), (i, len(written), len(streamed))
        for i in range(JOBS):  # outputs hashed while Redis was silent are still verifiable
            verified = procs.run("verify", f"job-{i}")
            assert verified.returncode == 0, verified.stdout + verified.stderr
        for proc in (receiver, *workers):
            assert proc.poll() is None, procs.log_of(proc)
        tally.fault("redis-server frozen (SIGSTOP) for 7 s")
        tally.ran(JOBS, JOBS)
    finally:
        if frozen:
            os.kill(server.proc.pid, signal.SIGCONT)
        procs.stop_all()
        server.stop()
