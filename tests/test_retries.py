"""Retries that learn: retry_delay_s (a failed attempt's job waits before its next claim,
doubling per failure, so a crash-looping job does not burn through max_attempts in
milliseconds) and the next attempt preferring another host than the one that failed it."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time

from support.procs import wait_for, write_profile
from test_claims import HOST, job, load

from scheduler.explain import explanation
from scheduler.reasons import reason_phrase
from scheduler.states import JobState, Outcome
from scheduler.store.actions import apply_action
from scheduler.store.claims import Claims
from scheduler.store.board import PreferenceBoard
from scheduler.store.views import read_jobs
from scheduler.store.workers import queue_publish


def fail(claims, classes):
    c = claims.claim("w", HOST, classes)
    assert c is not None
    claims.complete(c.job_id, c.attempt, "w", Outcome.FAILED, exit_code=1)
    return c


def test_a_failed_job_waits_its_delay_doubled_per_failure_then_runs(store):
    _, classes = load(store, job("flaky", max_attempts=3, retry_delay_s=0.4))
    claims = Claims(store.redis, store.keys)
    first = fail(claims, classes)
    assert store.jobs.get(first.job_id).state is JobState.PENDING
    assert claims.claim("w", HOST, classes) is None, "claimable again at once"
    assert 0.4 * 0.8 - 0.05 <= claims.retry_in <= 0.4 * 1.2, claims.retry_in
    time.sleep(claims.retry_in + 0.05)
    second = fail(claims, classes)
    assert second.attempt == 2
    assert claims.claim("w", HOST, classes) is None
    assert 0.8 * 0.8 - 0.05 <= claims.retry_in <= 0.8 * 1.2, ("doubled after the second failure", claims.retry_in)
    time.sleep(claims.retry_in + 0.05)
    third = claims.claim("w", HOST, classes)
    assert third.attempt == 3 and claims.retry_in is None


def test_a_lost_attempt_waits_too_and_zero_means_at_once(store):
    _, classes = load(store, job("lost", retry_delay_s=30) + job("eager", retry_delay_s=0, priority=-1))
    claims = Claims(store.redis, store.keys, lease_s=2)
    now = time.time()
    lost = claims.claim("dead", HOST, classes, now=now)
    for tick in (0, 1.5, 3):  # reapers tick more often than a lease lasts
        claims.reap(now=now + tick)
    assert store.jobs.get(lost.job_id).retry_at > now + 3 + 20
    eager = claims.claim("w", HOST, classes)
    assert store.jobs.get(eager.job_id).name == "eager", "the lost job waits its 30 s"
    claims.complete(eager.job_id, eager.attempt, "w", Outcome.FAILED, exit_code=1)
    again = claims.claim("w", HOST, classes)
    assert again.job_id == eager.job_id and again.attempt == 2, "retry_delay_s = 0: at once"


def test_the_wait_is_shown_and_a_hold_and_release_ends_it(store):
    _, classes = load(store, job("flaky", retry_delay_s=60))
    claims = Claims(store.redis, store.keys)
    c = fail(claims, classes)
    record = store.jobs.get(c.job_id)
    view = read_jobs(store, [record], time.time())
    assert reason_phrase(record, view).startswith("Retry delay ("), reason_phrase(record, view)
    summary = explanation(store.explain_view(record)).summary
    assert "Waiting out its retry delay: attempt 1 ended failed" in summary and "retry_delay_s 60" in summary, summary
    # A reload leaves it waiting.
    load(store, job("flaky", retry_delay_s=60, priority=5))
    assert claims.claim("w", HOST, classes) is None
    apply_action(store.redis, store.keys, "hold", [c.job_id])
    apply_action(store.redis, store.keys, "release", [c.job_id])
    assert claims.claim("w", HOST, classes).attempt == 2, "released: claimable now"
    assert store.redis.zcard(store.keys.retry_wait) == 0


def test_a_dependent_waiting_out_its_delay_says_so_not_dependency(store):
    """Its parents let it run once: what keeps it now is the delay (before, REASON said Dependency)."""
    _, classes = load(store, job("parent", retry_delay_s=0) + job("child", retry_delay_s=60, after=["parent"]))
    claims = Claims(store.redis, store.keys)
    parent = claims.claim("w", HOST, classes)
    claims.complete(parent.job_id, parent.attempt, "w", Outcome.FINISHED, exit_code=0)
    child = fail(claims, classes)
    record = store.jobs.get(child.job_id)
    assert record.name == "child"
    assert reason_phrase(record, read_jobs(store, [record], time.time())).startswith("Retry delay (")
    assert explanation(store.explain_view(record)).summary.startswith("Waiting out its retry delay")


def test_an_unset_delay_is_the_built_in_five_seconds(store):
    _, classes = load(store, job("flaky"))
    claims = Claims(store.redis, store.keys)
    c = fail(claims, classes)
    assert claims.claim("w", HOST, classes) is None
    assert 4.0 - 0.1 <= store.jobs.get(c.job_id).retry_at - time.time() <= 6.0


OTHER = dataclasses.replace(HOST, hostname="other")


def idle_on_board(store, name, host, classes):
    """Worker ``name`` on ``host`` registered, idle, with its offers on the preference board: what
    an idle worker's loop leaves in the store."""
    pipe = store.redis.pipeline()
    queue_publish(pipe, store.keys, name, {"resources": json.dumps(host.to_dict()), "state": "idle"}, time.time(),
                  idle=True)
    pipe.execute()
    PreferenceBoard(store.redis, store.keys, name).ask({c.class_id: 1.0 for c in classes})


def test_a_failed_job_goes_to_another_idle_host_first(store):
    _, classes = load(store, job("flaky", retry_delay_s=0))
    claims = Claims(store.redis, store.keys)
    idle_on_board(store, "a", HOST, classes)
    first = fail(claims, classes)  # on HOST, by worker a
    idle_on_board(store, "b", OTHER, classes)
    assert claims.claim("a", HOST, classes) is None, "the host it failed on passes it over while b is idle"
    summary = explanation(store.explain_view(store.jobs.get(first.job_id)))
    mine = dict(summary.per_worker)["a@box"]
    assert "its last attempt failed here: another idle host that can run it goes first" in mine, mine
    second = claims.claim("b", OTHER, classes)
    assert second.job_id == first.job_id and second.attempt == 2


def test_with_no_other_idle_host_the_failed_host_takes_it_again(store):
    _, classes = load(store, job("flaky", retry_delay_s=0))
    claims = Claims(store.redis, store.keys)
    idle_on_board(store, "a", HOST, classes)
    idle_on_board(store, "a2", HOST, classes)  # another worker, same host: no help
    fail(claims, classes)
    assert claims.claim("a", HOST, classes).attempt == 2


# -- on real worker processes and a real redis-server ------------------------------------------

def test_a_crash_looping_job_waits_between_attempts_and_a_burst_worker_waits_with_it(procs, real_store, tmp_path):
    from test_worker_processes import write_manifest

    jobs = [{"name": "crashy", "model": "m", "max_attempts": 3, "retry_delay_s": 0.5, "command": ["false"]}]
    procs.run("load", write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs}))
    worker = procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 1, 8), name="w")
    assert worker.wait(60) == 0, procs.log_of(worker)[-2000:]
    job_id = real_store.jobs.resolve("crashy")
    assert real_store.jobs.get(job_id).state is JobState.FAILED, "the burst worker left before the retries ran"
    a = Claims(real_store.redis, real_store.keys).attempts(job_id)
    gaps = [a[k + 1]["started_at"] - a[k]["ended_at"] for k in range(2)]
    assert [x["outcome"] for x in a] == ["failed"] * 3
    assert gaps[0] >= 0.5 * 0.8 - 0.01 and gaps[1] >= 1.0 * 0.8 - 0.01, gaps


def test_the_next_attempt_of_a_failed_job_runs_on_the_other_host(procs, real_store, tmp_path):
    from test_worker_processes import write_manifest

    flag = tmp_path / "failed-once"
    once = f"import os, sys; f = {str(flag)!r}; sys.exit(0) if os.path.exists(f) else (open(f, 'w'), sys.exit(1))"
    jobs = [{"name": "flaky", "model": "m", "retry_delay_s": 1, "command": [sys.executable, "-c", once]}]
    procs.run("load", write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs}))
    workers = [procs.worker(profile=write_profile(str(tmp_path / f"h{i}.toml"), f"box{i}", 1, 8), name=f"w{i}")
               for i in range(2)]
    job_id = real_store.jobs.resolve("flaky")
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.FINISHED, timeout_s=30, what="the second attempt")
    for w in workers:
        procs.kill(w, signal.SIGTERM)
        assert w.wait(20) == 0
    hosts = [x["host"] for x in Claims(real_store.redis, real_store.keys).attempts(job_id)]
    assert len(hosts) == 2 and hosts[0] != hosts[1], hosts
