"""Redis goes away mid-job and comes back: the job keeps running and its result is recorded.

"Nothing lost" here: the job that was running when redis-server was SIGKILLed
(AOF on, restarted on the same port 4 s later, after the job had ended) ends finished with exactly one
attempt and exactly one execution; the job still pending then runs afterwards;
every metrics line each job wrote is in its Redis stream, once and in order; both
jobs' outputs pass `fleet verify` (the manifest hashed while Redis was down reaches it later);
the worker process survives the outage.
"""

from __future__ import annotations

import glob
import os
import time

from support.procs import FleetProcs, sidefx_manifest, wait_for, write_profile

from scheduler.embedded_redis import RedisServer
from scheduler.states import JobState
from support.stores import make_store, metrics_file_and_stream


def test_worker_rides_out_a_redis_restart(tmp_path, tally):
    server = RedisServer(appendonly=True)
    procs = FleetProcs(server.url, str(tmp_path))
    try:
        store = make_store(server.client())
        path, ledger = sidefx_manifest(tmp_path, [{"name": "during", "model": "m"},
                                                  {"name": "after", "model": "m", "seed": 1}], sleep_s=1.5)
        assert procs.run("load", path).returncode == 0
        profile = write_profile(str(tmp_path / "h.toml"), "box", 1, 8)
        worker = procs.worker(profile=profile, name="w", lease_s=3)
        wait_for(lambda: glob.glob(os.path.join(str(ledger), "*")), what="the first job's process running")
        server.kill()
        time.sleep(4)  # the 1.5 s job ends while Redis is down; its result must wait, not vanish
        server.start()  # same port, same dir: the AOF brings the store back
        store = make_store(server.client())
        wait_for(lambda: store.jobs.counts()["finished"] == 2, timeout_s=60, what="both jobs after the outage")
        assert worker.poll() is None, procs.log_of(worker)
        for name in ("during", "after"):
            record = store.jobs.get(store.jobs.resolve(name))
            assert record.state is JobState.FINISHED and record.attempts == 1
        assert len(glob.glob(os.path.join(str(ledger), "*"))) == 2
        for name in ("during", "after"):  # metrics the job wrote while Redis was down reach it afterwards
            written, streamed = metrics_file_and_stream(store, name)
            assert len(written) >= 20 and streamed == written, (name, len(written), len(streamed))
            verified = procs.run("verify", name)  # outputs hashed while Redis was down are still verifiable
            assert verified.returncode == 0, verified.stdout + verified.stderr
        tally.fault("SIGKILL of redis-server mid-job, restarted from its AOF")
        tally.ran(2, 2)
    finally:
        procs.stop_all()
        server.stop()
