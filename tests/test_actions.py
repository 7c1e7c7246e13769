"""Operator actions through the store, on fakeredis and a real redis-server."""

from __future__ import annotations

import pytest
from support.stores import lua_heap_bytes
from test_claims import HOST, job, load

from scheduler.states import JobState, Outcome
from scheduler.store.actions import apply_action
from scheduler.store.claims import Claims


def state(store, name):
    return store.jobs.get(store.jobs.resolve(name)).state


def test_cancel_pending_never_runs(store):
    _, classes = load(store, job("a"))
    [r] = apply_action(store.redis, store.keys, "cancel", [store.jobs.resolve("a")])
    assert r.ok and state(store, "a") is JobState.CANCELED
    assert Claims(store.redis, store.keys).claim("w", HOST, classes) is None


def test_hold_and_release(store):
    _, classes = load(store, job("a"))
    job_id = store.jobs.resolve("a")
    apply_action(store.redis, store.keys, "hold", [job_id])
    claims = Claims(store.redis, store.keys)
    assert claims.claim("w", HOST, classes) is None
    apply_action(store.redis, store.keys, "release", [job_id])
    assert claims.claim("w", HOST, classes).job_id == job_id


def test_cancel_running_asks_its_worker_and_the_worker_records_it(store):
    _, classes = load(store, job("a"))
    claims = Claims(store.redis, store.keys)
    c = claims.claim("w", HOST, classes)
    [r] = apply_action(store.redis, store.keys, "cancel", [c.job_id])
    assert r.ok and state(store, "a") is JobState.RUNNING
    assert claims.renew(c.job_id, "w", c.attempt) == "cancel"
    assert claims.complete(c.job_id, c.attempt, "w", Outcome.CANCELED).state is JobState.CANCELED


def test_retry_failed_with_and_without_reset(store):
    _, classes = load(store, job("a", max_attempts=2, retry_delay_s=0))
    claims = Claims(store.redis, store.keys)

    def run_and_fail():
        c = claims.claim("w", HOST, classes)
        return claims.complete(c.job_id, c.attempt, "w", Outcome.FAILED, 1).state

    assert [run_and_fail(), run_and_fail()] == [JobState.PENDING, JobState.FAILED]
    job_id = store.jobs.resolve("a")
    [r] = apply_action(store.redis, store.keys, "retry", [job_id])
    assert r.ok and state(store, "a") is JobState.PENDING
    # Without --reset the failure budget stays spent: one more failure fails it for good.
    assert run_and_fail() is JobState.FAILED
    apply_action(store.redis, store.keys, "retry", [job_id], reset=True)
    assert run_and_fail() is JobState.PENDING
    assert store.jobs.get(job_id).attempts == 4


def test_illegal_actions_are_refused_and_change_nothing(store):
    _, classes = load(store, job("a"))
    claims = Claims(store.redis, store.keys)
    c = claims.claim("w", HOST, classes)
    claims.complete(c.job_id, c.attempt, "w", Outcome.FINISHED)
    for action in ("cancel", "retry", "hold", "release"):
        [r] = apply_action(store.redis, store.keys, action, [c.job_id])
        assert not r.ok and r.message
        assert state(store, "a") is JobState.FINISHED


def test_cancel_requested_while_running_wins_over_a_retry(store):
    _, classes = load(store, job("a", max_attempts=3))
    claims = Claims(store.redis, store.keys)
    c = claims.claim("w", HOST, classes)
    apply_action(store.redis, store.keys, "cancel", [c.job_id])
    # The attempt fails before the worker heard of the cancel: it must not come back as pending.
    assert claims.complete(c.job_id, c.attempt, "w", Outcome.FAILED, 1).state is JobState.CANCELED


def test_a_bulk_action_leaves_no_garbage_in_redis(real_store, real_redis):
    """A hold naming thousands of jobs decodes them all in Redis's Lua heap; left there as
    garbage, it would slow every later claim while Lua's collector reclaims it a step a call."""
    load(real_store, "".join(f'[[jobs]]\nname = "j{i}"\nmodel = "m"\nseed = {i}\n' for i in range(2000)))
    ids = [real_store.jobs.resolve(f"j{i}") for i in range(2000)]
    apply_action(real_redis, real_store.keys, "release", ids[:1])  # the script loaded, the heap at its working size
    before = lua_heap_bytes(real_redis)
    assert all(r.ok for r in apply_action(real_redis, real_store.keys, "hold", ids))
    grown = lua_heap_bytes(real_redis) - before
    assert grown < 256 * 1024, f"Redis's Lua heap grew by {grown} bytes over a hold of 2,000 jobs"
    assert state(real_store, "j1999") is JobState.HELD


def test_a_bulk_action_is_all_or_nothing(store):
    """`fleet hold c a` with a's record damaged used to hold c and then fail: a damaged key now
    refuses the whole action by name, and so does a job the action does not apply to."""
    import pytest

    from scheduler.embedded_redis import dump_namespace
    from scheduler.errors import StoreError

    _, classes = load(store, job("a") + job("b") + job("c"))
    a, b, c = (store.jobs.resolve(n) for n in "abc")
    claims = Claims(store.redis, store.keys)
    running = claims.claim("w", HOST, classes)
    assert running.job_id == a
    before = dump_namespace(store.redis)
    results = apply_action(store.redis, store.keys, "hold", [c, a, b])  # a is running: hold does not apply to it
    assert [r.ok for r in results] == [False, False, False]
    assert "cannot hold a running job" in results[1].message and "another job" in results[0].message
    assert dump_namespace(store.redis) == before
    store.redis.delete(store.keys.job(a))
    store.redis.set(store.keys.job(a), "not a hash")
    with pytest.raises(StoreError, match=f"key {store.keys.job(a)} holds a string"):
        apply_action(store.redis, store.keys, "hold", [c, a])
    assert state(store, "c") is JobState.PENDING
    assert [r.ok for r in apply_action(store.redis, store.keys, "hold", [c, b, c])] == [True, True]  # each job once


def test_filters_pick_what_an_action_touches_and_rq_sees_a_cancel(store):
    """`fleet hold --model 'transformer*'` holds the pending transformers and nothing else; a
    filter naming a state the action does not apply to changes nothing; a cancel is in rq's
    canceled registry (rq info, rq-dashboard) until a retry takes it out."""
    from scheduler.client import Client
    from scheduler.errors import UsageError

    jobs = "".join(f'[[jobs]]\nname = "{m}-{i}"\nmodel = "{m}"\nseed = {i}\n'
                   for m in ("transformer-xl", "transformer-s", "cnn") for i in range(8))
    load(store, jobs)
    client = Client(store=store)
    held = client.hold(model="transformer*")
    assert len(held) == 16 and all(r["ok"] and (r["from"], r["to"]) == ("pending", "held") for r in held)
    assert {r["name"] for r in client.jobs(state="held", limit=100)} == {r["name"] for r in held}
    assert [r["name"] for r in client.jobs(state="pending", name="*-3")] == ["cnn-3"]
    refused = client.retry(state="held", model="transformer-s")  # retry applies to failed or canceled only
    assert len(refused) == 8 and not any(r["ok"] for r in refused)
    assert len(client.jobs(state="held", limit=100)) == 16  # all or nothing: none changed
    canceled = client.cancel(state="held,pending", name="*-[01]")
    assert len(canceled) == 6 and all(r["ok"] for r in canceled)
    canceled_ids = {r["job_id"] for r in canceled}
    assert {m.decode() for m in store.redis.zrange(store.keys.rq_canceled, 0, -1)} == canceled_ids
    assert {store.redis.hget(store.keys.rq_job(i), "status") for i in canceled_ids} == {b"canceled"}
    assert all(r["ok"] for r in client.retry(model="cnn"))  # without --state: the failed or canceled ones
    assert store.redis.zcard(store.keys.rq_canceled) == 4
    assert store.redis.hget(store.keys.rq_job(store.jobs.resolve("cnn-0")), "status") == b"queued"
    with pytest.raises(UsageError, match="name the jobs, or select them"):
        client.hold()  # no names and no filter: never "every job"
    with pytest.raises(UsageError, match="not both"):
        client.hold(["cnn-0"], model="cnn")
