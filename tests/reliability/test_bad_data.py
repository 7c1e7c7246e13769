"""Foreign or corrupt values at fleet keys: a clear error, never a crash loop, nothing else lost.

"Nothing lost" here: every healthy job still finishes; the corrupt one ends failed
with a reason naming its key; the worker process is still running.
"""

from __future__ import annotations

import tomli_w
from support.procs import wait_for, write_profile

from scheduler.states import JobState
from scheduler.store.claims import Claims


def test_a_corrupt_job_spec_fails_that_job_and_the_worker_carries_on(procs, real_store, tmp_path, tally):
    jobs = [{"name": f"j{i}", "model": "m", "seed": i, "command": ["true"], "priority": 10 if i == 0 else 0}
            for i in range(4)]
    jobs[0]["max_attempts"] = 1  # its spec cannot say retry_delay_s = 0 once spoiled
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "jobs": jobs}))
    assert procs.run("load", str(path)).returncode == 0
    bad = real_store.jobs.resolve("j0")
    real_store.redis.set(real_store.keys.spec(bad), "{not json")
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w", lease_s=30)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 3, timeout_s=30, what="the healthy jobs")
    assert worker.poll() is None, procs.log_of(worker)
    record = real_store.redis.hgetall(real_store.keys.job(bad))
    assert record[b"state"] == JobState.FAILED.value.encode()
    assert real_store.keys.spec(bad).encode() in record[b"reason"]
    status = procs.run("status")
    assert status.returncode == 1 and "corrupt" in status.stderr  # the operator is told, once, by key
    tally.fault("a job spec that is not JSON")
    tally.ran(4, 4)


def test_a_foreign_value_at_a_namespace_key_is_a_clear_error_for_the_cli(procs, real_store, tmp_path, tally):
    real_store.redis.set(real_store.keys.state("pending"), "oops")
    done = procs.run("status")
    assert done.returncode == 1 and "refused a command" in done.stderr and "\n" not in done.stderr.strip()
    tally.fault("a namespace key of the wrong type")


def test_a_damaged_class_record_holds_its_jobs_and_the_worker_runs_the_rest(procs, real_store, tmp_path, tally):
    """Nothing lost: the damaged class's job stays pending (not failed, not run with wrong
    needs); the other classes' jobs all finish; the worker never exits."""
    jobs = [{"name": "odd", "model": "m", "seed": 99, "min_cores": 2, "command": ["true"]},
            *({"name": f"j{i}", "model": "m", "seed": i, "command": ["true"]} for i in range(3))]
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "jobs": jobs}))
    assert procs.run("load", str(path)).returncode == 0
    odd = real_store.jobs.get(real_store.jobs.resolve("odd"))
    real_store.redis.hset(real_store.keys.classes, odd.class_id, "{not json")
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 4, 8), name="w", lease_s=30)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 3, timeout_s=30, what="the healthy jobs")
    assert worker.poll() is None, procs.log_of(worker)
    assert real_store.jobs.get(odd.job_id).state is JobState.PENDING
    assert procs.log_of(worker).count("is not fleet's JSON") == 1
    tally.fault("a class record that is not JSON")
    tally.ran(3, 3)


def _three_jobs_for(tmp_path, procs) -> str:
    jobs = [{"name": f"j{i}", "model": "m", "seed": i, "command": ["true"]} for i in range(3)]
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "hosts": {"box": {}, "other": {}}, "jobs": jobs}))
    assert procs.run("load", str(path)).returncode == 0
    return str(path)


def test_a_damaged_host_record_pauses_its_worker_with_the_reason_until_a_reload(procs, real_store, tmp_path, tally):
    """Nothing lost: every job stays pending while the worker's own host record is damaged
    (its allow/deny rules are unknown), then all finish; the worker never exits."""
    path = _three_jobs_for(tmp_path, procs)
    real_store.redis.hset(real_store.keys.hosts, mapping={"box": "{not json", "other": "[1]"})
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 4, 8), name="w", lease_s=30)
    entry = real_store.keys.worker("w")
    wait_for(lambda: real_store.redis.hget(entry, "state") == b"paused", what="the worker to pause")
    note = real_store.redis.hget(entry, "note").decode()
    assert f"{real_store.keys.hosts}[box]" in note and "reload the manifest" in note
    assert worker.poll() is None, procs.log_of(worker)
    assert real_store.jobs.counts()["pending"] == 3
    assert procs.run("load", path).returncode == 0  # rewrites both host records
    wait_for(lambda: real_store.jobs.counts()["finished"] == 3, timeout_s=20, what="the jobs after the reload")
    log = procs.log_of(worker)
    assert log.count("claiming paused") == 1 and "claiming resumed" in log
    tally.fault("host records that are not JSON", 2)
    tally.ran(3, 3)


def test_a_non_numeric_ledger_field_stops_claims_before_any_job_leaves_pending(procs, real_store, tmp_path, tally):
    """Nothing lost: the claim fails before its first write, so no job is left running with no
    worker; a burst worker exits non-zero saying which field; once it is gone, all run."""
    _three_jobs_for(tmp_path, procs)
    real_store.redis.hset(real_store.keys.ledger("box"), "ram", "lots")
    profile = write_profile(str(tmp_path / "h.toml"), "box", 4, 8)
    worker = procs.worker("--burst", profile=profile, name="w", lease_s=30)
    assert worker.wait(20) != 0
    assert f"ledger {real_store.keys.ledger('box')} field ram is not a number" in procs.log_of(worker)
    counts = real_store.jobs.counts()
    assert counts["pending"] == 3 and counts["running"] == 0, counts
    real_store.redis.hdel(real_store.keys.ledger("box"), "ram")
    assert procs.worker("--burst", profile=profile, name="w2", lease_s=30).wait(30) == 0
    assert real_store.jobs.counts()["finished"] == 3
    tally.fault("a ledger field that is not a number")
    tally.ran(3, 3)


def test_a_damaged_names_key_pauses_claiming_once_and_retries_on_the_interval(procs, real_store, tmp_path, tally):
    """Nothing lost: the job whose start met the damage goes back to pending once (one
    `interrupted` attempt, uncounted) and runs once the key is repaired; the worker says so
    once, claims nothing meanwhile, and never exits. It used to hand the job back and claim
    it again ~500 times a second, appending an attempt record each time."""
    jobs = [{"name": "parent", "model": "m", "command": ["true"]},
            {"name": "child", "model": "m", "seed": 1, "command": ["true"], "after": ["parent"]}]
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "jobs": jobs}))
    assert procs.run("load", str(path)).returncode == 0
    names = real_store.keys.names
    real_store.redis.delete(names)
    real_store.redis.rpush(names, "x")
    tally.fault("a namespace key of the wrong type")
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w", lease_s=30)
    entry = real_store.keys.worker("w")
    wait_for(lambda: real_store.redis.hget(entry, "state") == b"paused", what="the worker to pause")
    note = real_store.redis.hget(entry, "note").decode()
    assert f"key {names} holds a list, not fleet's hash" in note
    paused_at = float(real_store.redis.hget(entry, "heartbeat"))
    wait_for(lambda: float(real_store.redis.hget(entry, "heartbeat")) > paused_at + 4, timeout_s=15,
             what="the worker's next try, on the retry interval")
    log = procs.log_of(worker)
    assert log.count("claiming paused") == 1 and "claiming resumed" not in log, log[-3000:]
    child_id = next(r.job_id for r in real_store.jobs.many(real_store.jobs.list_ids()) if r.name == "child")
    assert real_store.jobs.get(child_id).attempts == 1  # handed back once, then no claim while paused
    assert worker.poll() is None

    real_store.redis.delete(names)
    assert procs.run("load", str(path)).returncode == 0  # rewrites the names
    wait_for(lambda: real_store.jobs.counts()["finished"] == 2, timeout_s=20, what="both jobs after the repair")
    assert real_store.jobs.resolve("child") == child_id
    assert "claiming resumed" in procs.log_of(worker)
    attempts = [a["outcome"] for a in Claims(real_store.redis, real_store.keys).attempts(child_id)]
    assert attempts == ["interrupted", "finished"], attempts
    tally.ran(2, 3)


def test_a_pending_job_whose_rq_record_was_deleted_runs_and_a_foreign_one_fails_its_attempt(procs, real_store,
                                                                                            tmp_path, tally):
    """rq-dashboard's Delete removes a pending job's rq record. Nothing lost: that job runs
    (its rq record written back), a job whose rq record is not rq's fails its attempts with the
    key named (max_attempts, not forever), the other jobs all finish, and the worker never dies
    of it; every worker that claimed such a job used to die of NoSuchJobError."""
    jobs = [{"name": "deleted", "model": "m", "command": ["true"]},
            {"name": "foreign", "model": "m", "seed": 1, "command": ["true"], "max_attempts": 2, "retry_delay_s": 0},
            {"name": "healthy", "model": "m", "seed": 2, "command": ["true"]}]
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "jobs": jobs}))
    assert procs.run("load", str(path)).returncode == 0
    keys = real_store.keys
    deleted, foreign = real_store.jobs.resolve("deleted"), real_store.jobs.resolve("foreign")
    real_store.redis.delete(keys.rq_job(deleted))  # what rq's Job.delete does to a job on no rq queue
    real_store.redis.delete(keys.rq_job(foreign))
    real_store.redis.set(keys.rq_job(foreign), "not rq's")
    tally.fault("an rq job record deleted or foreign", 2)
    worker = procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w",
                          lease_s=30)
    assert worker.wait(30) == 0, procs.log_of(worker)
    assert real_store.jobs.get(deleted).state is JobState.FINISHED
    assert real_store.redis.hget(keys.rq_job(deleted), "status") == b"finished"  # rq's view is whole again
    assert real_store.jobs.get(real_store.jobs.resolve("healthy")).state is JobState.FINISHED
    record = real_store.jobs.get(foreign)
    assert record.state is JobState.FAILED and record.attempts == 2
    assert keys.rq_job(foreign) in record.reason
    tally.ran(3, 4)


def test_an_attempt_end_the_store_refuses_is_kept_and_recorded_once_repaired(procs, real_store, tmp_path, tally):
    """The events stream turns into a string while a job runs. Nothing lost: the worker keeps the
    job's result, says why once, shows paused, and records the result (finished, one attempt)
    once the key is gone; no job runs twice, none is left running."""
    import sys

    from support.procs import SIDEFX

    ledger = tmp_path / "ledger"
    ledger.mkdir()
    jobs = [{"name": "long", "model": "m", "command": [sys.executable, SIDEFX, str(ledger), "{job_id}", "{attempt}",
                                                         "1.5"]}]
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "jobs": jobs}))
    assert procs.run("load", str(path)).returncode == 0
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w", lease_s=30)
    wait_for(lambda: list(ledger.iterdir()), what="the job to start")
    events = real_store.keys.events
    real_store.redis.delete(events)
    real_store.redis.set(events, "not a stream")
    tally.fault("a key an attempt's end writes, spoiled while the job runs")
    entry = real_store.keys.worker("w")
    wait_for(lambda: b"cannot record" in (real_store.redis.hget(entry, "note") or b""), timeout_s=20,
             what="the worker to say it cannot record the job's end")
    job_id = real_store.jobs.resolve("long")
    assert real_store.jobs.get(job_id).state is JobState.RUNNING  # nothing half-written
    real_store.redis.delete(events)
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.FINISHED, timeout_s=20,
             what="the kept result to be recorded")
    record = real_store.jobs.get(job_id)
    assert record.attempts == 1 and len(list(ledger.iterdir())) == 1
    assert procs.log_of(worker).count("cannot record finished") == 1
    assert worker.poll() is None
    tally.ran(1, 1)
