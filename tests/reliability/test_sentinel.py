"""Redis Sentinel (issue 18): workers and the receiver follow a failover by themselves, and no
job runs twice at once across it. Real master, replica and sentinel processes on loopback."""

from __future__ import annotations

import os

import redis

from support.procs import FleetProcs, sidefx_manifest, wait_for, write_profile
from support.sentinel import SentinelSet
from test_crash import assert_each_ran_alone, executions

from scheduler.settings import Settings
from scheduler.states import JobState
from scheduler.store import Store

JOBS = 24


def test_a_failover_mid_run_is_followed_without_restarts_and_runs_no_job_twice_at_once(tmp_path, tally):
    with SentinelSet() as redis_set:
        store = Store.connect(Settings(redis_url=redis_set.url))
        assert store.redis.info("server")["tcp_port"] == redis_set.master.port
        procs = FleetProcs(redis_set.url, str(tmp_path))
        try:
            path, ledger = sidefx_manifest(tmp_path, [{"name": f"j{i}", "model": "m", "seed": i} for i in range(JOBS)],
                                           sleep_s=0.4, min_cores=1)
            receiver = procs.start("receiver", "--manifest", path, "--lease-s", "4")
            profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
            workers = [procs.worker("--slots", "2", profile=profile, name=f"w{i}", lease_s=4) for i in range(2)]
            wait_for(lambda: store.jobs.counts()["finished"] >= JOBS // 4, timeout_s=60, what="a quarter done")
            redis_set.failover()
            tally.fault("SENTINEL FAILOVER mid-run")
            # The test's own reads meet the failover too (a reset from the demoted master, once on CI).
            wait_for(lambda: store.jobs.counts()["finished"] == JOBS, timeout_s=120, what="every job finished",
                     tolerate=(redis.ConnectionError,))
            assert store.redis.info("server")["tcp_port"] == redis_set.replica.port  # the CLI's client followed too
            assert receiver.poll() is None and all(w.poll() is None for w in workers), "a process died in the failover"
            assert "Traceback" not in "".join(procs.log_of(p) for p in [receiver, *workers])
        finally:
            procs.stop_all()
        runs = executions(str(ledger))
        assert len(runs) == JOBS, "every job ran"
        assert_each_ran_alone(runs)
        records = store.jobs.many(store.jobs.list_ids(limit=JOBS))
        assert all(r.state is JobState.FINISHED for r in records)
        tally.ran(JOBS, sum(r.attempts for r in records))
        assert os.path.isdir(ledger)
