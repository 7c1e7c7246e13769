"""A key holding a value fleet did not write: claims and attempt ends refuse it by name and
write nothing (Redis keeps a script's writes up to its failing command), on fakeredis and a
real redis-server."""

from __future__ import annotations

import re
import time

import pytest
from test_claims import HOST, job, load

from scheduler.embedded_redis import dump_namespace
from scheduler.errors import StoreError
from scheduler.states import JobState, Outcome
from scheduler.store.claims import Claims

CPU_HOST = HOST.__class__("box", cores=8, ram_total_gib=64, ram_available_gib=64)


def spoil(redis, key: str, fleet_type: str = "") -> None:
    """Put a value of the wrong type at ``key``: a string, or a list where fleet keeps a string."""
    keeps_a_string = (fleet_type or redis.type(key).decode()) == "string"
    redis.delete(key)
    redis.rpush(key, "x") if keeps_a_string else redis.set(key, "x")


CLAIM_WRITES = {
    "running": lambda k, job_id: k.running,
    "the job's record": lambda k, job_id: k.job(job_id),
    "the job's attempts": lambda k, job_id: k.attempts(job_id),
    "the pending index": lambda k, job_id: k.state("pending"),
    "the running index": lambda k, job_id: k.state("running"),
}


@pytest.mark.parametrize("what", sorted(CLAIM_WRITES))
def test_a_claim_refuses_a_foreign_key_it_would_write_and_writes_nothing(store, any_redis, what):
    _, classes = load(store, job("a"))
    job_id = store.jobs.resolve("a")
    key = CLAIM_WRITES[what](store.keys, job_id)
    spoil(any_redis, key)
    before = dump_namespace(any_redis)
    with pytest.raises(StoreError, match=f"key {key} holds a .*, not fleet's"):
        Claims(store.redis, store.keys).claim("w", CPU_HOST, classes)
    assert dump_namespace(any_redis) == before


def _running(store, *jobs: str):
    _, classes = load(store, "".join(jobs))
    claims = Claims(store.redis, store.keys)
    return claims, claims.claim("w", CPU_HOST, classes)


FINISH_WRITES = ["running", "events", "heads", "running index", "finished index", "attempts", "attempt record",
                 "ledger", "ledger field", "dependents", "child record"]


@pytest.mark.parametrize("what", FINISH_WRITES)
def test_an_attempt_end_refuses_a_foreign_key_it_would_write_and_writes_nothing(store, any_redis, what):
    claims, c = _running(store, job("a", min_ram_gib=2, min_cores=1), job("child", after=["a"]))
    k, job_id = store.keys, c.job_id
    child = store.jobs.resolve("child")
    keys = {"running": k.running, "events": k.events, "heads": k.heads, "running index": k.state("running"),
            "finished index": k.state("finished"), "attempts": k.attempts(job_id), "ledger": k.ledger("box"),
            "dependents": k.dependents_prefix + job_id, "child record": k.job(child)}
    if what == "attempt record":
        any_redis.lset(k.attempts(job_id), 0, "{not json")
        expected = f"attempt record 1 in {k.attempts(job_id)} is not fleet's JSON"
    elif what == "ledger field":
        any_redis.hset(k.ledger("box"), "cores", "many")
        expected = f"ledger {k.ledger('box')} field cores is not a number"
    else:
        any_redis.xadd(k.events, {"kind": "x"})  # so that the stream exists to be spoiled
        spoil(any_redis, keys[what])
        expected = f"key {keys[what]} holds a"
    before = dump_namespace(any_redis)
    with pytest.raises(StoreError, match=expected.replace("[", r"\[").replace("{", r"\{").replace("}", r"\}")):
        claims.complete(job_id, c.attempt, "w", Outcome.FINISHED)
    assert dump_namespace(any_redis) == before
    assert store.jobs.get(job_id).state is JobState.RUNNING


def test_the_reaper_leaves_a_damaged_lease_and_reaps_the_others(store, any_redis, caplog):
    _, classes = load(store, job("a") + job("b"))
    claims = Claims(store.redis, store.keys, lease_s=1)
    first, second = claims.claim("w", CPU_HOST, classes), claims.claim("w", CPU_HOST, classes)
    any_redis.set(store.keys.attempts(first.job_id), "x")
    later = time.time() + 10
    ended = claims.reap(now=later)
    assert [e.job_id for e in ended] == [second.job_id]
    assert store.jobs.get(first.job_id).state is JobState.RUNNING
    claims.reap(now=later + 0.5)
    assert caplog.text.count(f"key {store.keys.attempts(first.job_id)} holds a string") == 1  # said once


def test_foreign_keys_names_every_shared_key_a_worker_touches(store, any_redis):
    load(store, job("a"))
    claims = Claims(store.redis, store.keys)
    assert claims.foreign_keys("w", "box") == []
    k = store.keys
    shared = [k.running, k.heads, k.classes, k.hosts, k.names, k.events, k.reaper_tick, k.workers, k.worker("w"),
              k.ledger("box"), *(k.state(s.value) for s in JobState)]
    for key in shared:
        any_redis.xadd(k.events, {"kind": "x"})
        spoil(any_redis, key, "string" if key == k.reaper_tick else "")
        found = claims.foreign_keys("w", "box")
        assert len(found) == 1 and found[0].startswith(f"key {key} holds a") and "reload the manifest" in found[0], key
        any_redis.delete(key)


def test_a_damaged_host_record_is_left_out_and_said_once_unless_it_is_the_readers_own(store, caplog):
    """One host read for the claim loop, status, explain and probe: a record fleet did not write
    is skipped, logged once however often it is read; the reader's own host is refused by name."""
    load(store, job("a"), '[hosts.box]\n[hosts.other]\n')
    store.redis.hset(store.keys.hosts, "other", "{not json")
    assert list(store.hosts()) == ["box"] and list(store.hosts(own="box")) == ["box"]
    assert caplog.text.count(f"host record {store.keys.hosts}[other] is not fleet's JSON") == 1
    with pytest.raises(StoreError, match=re.escape(f"host record {store.keys.hosts}[other]") + ".*reload the manifest"):
        store.hosts(own="other")
