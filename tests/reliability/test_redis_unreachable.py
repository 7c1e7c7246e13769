"""Redis stops answering for 10 s while jobs run: nothing is lost, nothing runs twice.

redis-server is frozen with SIGSTOP (connections hang rather than being refused:
the harder case, since every client call waits out its socket timeout) for 10 s,
longer than the workers' 3 s lease, while two workers run jobs and a receiver
reaps leases. "Nothing lost" means: every job ends finished with exactly one
attempt, the side-effect ledger holds exactly one execution per job, every metrics
line a job wrote is in its Redis stream (a batch in flight when Redis froze may
arrive twice: whether Redis applied it cannot be known), every job's
outputs pass ``fleet verify`` (the artifact manifests hashed during the freeze
reach Redis afterwards), and the workers and the receiver are still alive.
"""

from __future__ import annotations

import glob
import os
import signal
import time

from support.procs import FleetProcs, sidefx_manifest, wait_for, write_profile

from scheduler.embedded_redis import RedisServer
from scheduler.states import JobState
from support.stores import make_store, metrics_file_and_stream

JOBS = 6
FROZEN_S = 10.0


def test_ten_seconds_of_silent_redis_lose_and_duplicate_nothing(tmp_path):
    server = RedisServer()
    procs = FleetProcs(server.url, str(tmp_path))
    frozen = False
    try:
        store = make_store(server.client())
        path, ledger = sidefx_manifest(tmp_path, [{"name": f"job-{i}", "model": "m", "seed": i} for i in range(JOBS)],
                                       sleep_s=2, min_cores=1)
        receiver = procs.start("receiver", "--manifest", path, "--lease-s", "3")
        wait_for(lambda: store.jobs.counts()["pending"] == JOBS, what="the receiver's first load")
        workers = [procs.worker(profile=write_profile(str(tmp_path / f"h{i}.toml"), f"box{i}", 1, 8),
                                name=f"w{i}", lease_s=3) for i in range(2)]
        wait_for(lambda: len(glob.glob(os.path.join(str(ledger), "*"))) >= 2, what="both workers running a job")

        os.kill(server.proc.pid, signal.SIGSTOP)
        frozen = True
        time.sleep(FROZEN_S)  # the running jobs end while Redis is silent; their results must wait
        os.kill(server.proc.pid, signal.SIGCONT)
        frozen = False

        wait_for(lambda: store.jobs.counts()["finished"] == JOBS, timeout_s=90, what="every job after the freeze")
        for i in range(JOBS):
            record = store.jobs.get(store.jobs.resolve(f"job-{i}"))
            assert record.state is JobState.FINISHED and record.attempts == 1, (record.name, record.attempts)
        executions = sorted(os.path.basename(p) for p in glob.glob(os.path.join(str(ledger), "*")))
        job_ids = {name.split(".")[0] for name in executions}
        assert len(executions) == JOBS and len(job_ids) == JOBS, executions
        for i in range(JOBS):  # no metrics line the jobs wrote during the freeze is missing from Redis
            written, streamed = metrics_file_and_stream(store, f"job-{i}")
            assert set(written) <= set(streamed), (i, len(written), len(streamed))
        for i in range(JOBS):  # outputs hashed while Redis was silent are still verifiable
            verified = procs.run("verify", f"job-{i}")
            assert verified.returncode == 0, verified.stdout + verified.stderr
        for proc in (receiver, *workers):
            assert proc.poll() is None, procs.log_of(proc)
    finally:
        if frozen:
            os.kill(server.proc.pid, signal.SIGCONT)
        procs.stop_all()
        server.stop()
