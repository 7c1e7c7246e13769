"""SIGKILL storms: workers die mid-job again and again; no job is lost and none runs twice at once.

"Nothing lost" here: every job ends finished (or failed after max_attempts) and
each of its attempts is recorded with an outcome; an attempt whose worker was
killed is recorded as lost. "Never twice at once": the start/end times every
execution wrote never overlap for the same job.
"""

from __future__ import annotations

import glob
import os
import random
import sys

import tomli_w
from support.procs import SIDEFX, wait_for

from scheduler.store.claims import Claims

JOBS = 24
KILLS = 12
WORKERS = 4


def executions(ledger: str) -> dict[str, list[tuple[float, float]]]:
    """Per job: (start, last sign of life) of every execution, killed ones included."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for path in glob.glob(os.path.join(ledger, "*")):
        job_id = os.path.basename(path).split(".")[0]
        stamps = [float(line.split()[1]) for line in open(path).read().splitlines() if line.strip()]
        runs.setdefault(job_id, []).append((stamps[0], stamps[-1]))
    return runs


def assert_each_ran_alone(runs: dict[str, list[tuple[float, float]]]) -> None:
    """No two executions of one job overlapped in time (the jobs' own records say when each ran)."""
    for job_id, spans in runs.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"job {job_id} ran twice at once: {spans}"


def test_sigkill_storm_loses_nothing_and_never_overlaps(procs, real_store, real_redis, tmp_path, tally):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    manifest = {
        "schema_version": 1,
        "defaults": {"command": [sys.executable, SIDEFX, str(ledger), "{job_id}", "{attempt}", "{sleep}"],
                     "sleep": 0.6, "max_attempts": 100, "min_cores": 0, "retry_delay_s": 0},
        "jobs": [{"name": f"j{i}", "model": "sleepy", "seed": i} for i in range(JOBS)],
    }
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps(manifest))
    profile = tmp_path / "host.toml"
    profile.write_text('hostname = "crashy"\ncuda = false\ncores = 16\nram_gib = 64\n')
    procs.start("receiver", "--manifest", str(path), "--lease-s", "2", "--reap-interval-s", "0.5")
    wait_for(lambda: real_store.jobs.counts()["pending"] == JOBS, what="receiver's first load")

    rng = random.Random(7)
    workers = [procs.worker(profile=str(profile), name=f"w{i}", lease_s=2) for i in range(WORKERS)]
    kills = 0
    while kills < KILLS:
        busy = wait_for(lambda: [w for w in workers if w.poll() is None and _busy(real_redis, real_store, w)],
                        timeout_s=30, what="a worker with a running job")
        victim = rng.choice(busy)
        procs.kill(victim)
        victim.wait(10)
        kills += 1
        workers[workers.index(victim)] = procs.worker(profile=str(profile), name=f"w{kills + WORKERS}", lease_s=2)

    def settled():
        c = real_store.jobs.counts()
        return c["finished"] + c["failed"] == JOBS
    wait_for(settled, timeout_s=120, what="every job to finish after the storm")

    claims = Claims(real_redis, real_store.keys)
    lost = recorded = 0
    for record in real_store.jobs.many(real_store.jobs.list_ids(limit=JOBS)):
        attempts = claims.attempts(record.job_id)
        recorded += len(attempts)
        assert len(attempts) == record.attempts
        assert all("outcome" in a for a in attempts), attempts
        lost += sum(a["outcome"] == "lost" for a in attempts)
        assert record.state.value == "finished"
    assert lost >= 1, "the storm should have cost at least one attempt"
    assert_each_ran_alone(executions(str(ledger)))
    tally.fault("SIGKILL of a busy worker", KILLS)
    tally.ran(JOBS, recorded)


def _busy(real_redis, store, proc) -> bool:
    for key in real_redis.scan_iter(match=store.keys.worker("*")):
        data = real_redis.hgetall(key)
        if data.get(b"pid") == str(proc.pid).encode() and data.get(b"state") == b"busy":
            return True
    return False



DEAF = ("import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")  # SIG_IGN survives the exec


def test_a_dead_workers_job_is_gone_before_its_lease_runs_out(procs, real_store, real_redis, tmp_path, tally):
    """The worker dies (SIGKILL) under a job that ignores SIGTERM. Its horse must end the job
    before the lease expires, since the reaper then hands the job to the next worker: a 5 s
    checkpoint grace inside a 2 s lease ran the job twice at once."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    manifest = {"schema_version": 1,
                "defaults": {"command": [sys.executable, "-c", DEAF, SIDEFX, str(ledger), "{job_id}", "{attempt}", "3"],
                             "min_cores": 0, "retry_delay_s": 0},
                "jobs": [{"name": "deaf", "model": "m"}]}
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps(manifest))
    profile = tmp_path / "host.toml"
    profile.write_text('hostname = "box"\ncuda = false\ncores = 4\nram_gib = 8\n')
    procs.start("receiver", "--manifest", str(path), "--lease-s", "2", "--reap-interval-s", "0.2")
    first = procs.worker(profile=str(profile), name="first", lease_s=2)
    wait_for(lambda: os.listdir(ledger), what="the job's first execution")
    keys = real_store.keys
    assert real_redis.sismember(keys.rq_workers, keys.rq_worker_prefix + "first")  # `rq info` lists it, busy
    procs.kill(first)
    tally.fault("SIGKILL of a worker under a job that ignores SIGTERM")
    procs.worker(profile=str(profile), name="second", lease_s=2)
    job_id = real_store.jobs.resolve("deaf")
    wait_for(lambda: real_store.jobs.get(job_id).state.value == "finished", timeout_s=60,
             what="the job to finish on the second worker")
    # rq's registry lets go of the dead worker as rq's cleanup would, without waiting for its key to expire
    wait_for(lambda: not real_redis.sismember(keys.rq_workers, keys.rq_worker_prefix + "first"), timeout_s=10,
             what="rq's worker registry to drop the SIGKILLed worker")
    assert not real_redis.exists(keys.rq_worker_prefix + "first")
    assert real_redis.sismember(keys.rq_workers, keys.rq_worker_prefix + "second")
    attempts = Claims(real_redis, real_store.keys).attempts(job_id)
    assert [a["outcome"] for a in attempts] == ["lost", "finished"], attempts
    spans = sorted(executions(str(ledger))[job_id])
    assert len(spans) == 2 and spans[1][0] >= spans[0][1], f"the job ran twice at once: {spans}"
    tally.ran(1, len(attempts))
