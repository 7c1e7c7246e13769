"""Loads in short steps (issue 18): a load killed at any point ends as the old manifest or the
new one, claims never see a half-applied one, and no step carries or holds much."""

from __future__ import annotations

import time

import tomli_w

from scheduler.embedded_redis import dump_namespace
from scheduler.manifest import parse_manifest
from scheduler.resources import HostResources
from scheduler.status import status_document
from scheduler.store.loading import CHUNK_ACTIONS, LoadLock, _chunks, build_payload, finish_interrupted_load
from scheduler.store.load_plan import check_write_targets, plan_diff

JOBS = 2 * CHUNK_ACTIONS + 100  # three steps


def manifest(offset: int, n: int = JOBS):
    return parse_manifest(tomli_w.dumps({"schema_version": 1, "jobs": [
        {"name": f"j{i}", "model": "m", "seed": i, "min_cores": 1} for i in range(offset, offset + n)]}), "m.toml")


def listed(store) -> set[str]:
    return {m.decode() for m in store.redis.smembers(store.keys.in_manifest)}


def begin(store, m, lease_s: float) -> tuple[LoadLock, list[str]]:
    """A loader's work up to (not including) its first step: locked, planned, staged."""
    lock = LoadLock(store.redis, store.keys, lease_s=lease_s)
    lock.acquire(5)
    payload = build_payload(m, store.keys, time.time())
    diff = plan_diff(store.redis, store.keys, payload)
    check_write_targets(store.redis, store.keys, payload, diff)
    chunks = _chunks(payload, diff, store.keys)
    lock.stage(chunks)
    return lock, chunks


HOST = HostResources("box", cores=8, ram_total_gib=32, ram_available_gib=32)


def test_a_loader_dead_after_its_first_step_is_finished_by_the_next_claim(real_store):
    old, new = manifest(0), manifest(JOBS // 2)
    real_store.load(old)
    lock, chunks = begin(real_store, new, lease_s=0.5)
    assert len(chunks) >= 3
    lock.step(0, len(chunks))  # the commit point; then the loader is "killed"
    claims = real_store.claims()
    classes = list(real_store.catalog.classes(real_store.redis.hgetall(real_store.keys.classes)).values())
    assert claims.claim("w", HOST, classes) is None, "a claim was handed a job from a half-applied manifest"
    assert status_document(real_store)["load"] == {"phase": "applying", "step": 1, "steps": len(chunks),
                                                   "interrupted": False, "claims_wait": True}
    time.sleep(0.6)  # its lease runs out
    assert status_document(real_store)["load"]["interrupted"] is True
    assert claims.claim("w", HOST, classes) is None  # this claim finishes the load...
    assert listed(real_store) == {j.job_id for j in new.jobs}
    assert not real_store.redis.exists(real_store.keys.load_lock)
    assert claims.claim("w", HOST, classes) is not None  # ...and the next one gets a job of the new manifest
    assert status_document(real_store)["load"] is None


def test_a_loader_dead_before_its_first_step_leaves_the_old_manifest_untouched(real_store, real_redis):
    old, new = manifest(0), manifest(JOBS // 2)
    real_store.load(old)
    jobs_before = {k: v for k, v in dump_namespace(real_redis).items() if b":load" not in k}
    begin(real_store, new, lease_s=0.3)  # staged, then "killed"
    assert listed(real_store) == {j.job_id for j in old.jobs}
    assert finish_interrupted_load(real_redis, real_store.keys) is False  # nothing past a commit point
    assert {k: v for k, v in dump_namespace(real_redis).items() if b":load" not in k} == jobs_before
    time.sleep(0.4)
    plan = real_store.load(new)  # the dead loader's lock is dropped, its load never happened
    assert len(plan.added) == JOBS // 2 and listed(real_store) == {j.job_id for j in new.jobs}


def test_a_second_loader_waits_for_the_first_and_then_finishes_its_abandoned_load(real_store):
    old, new, newer = manifest(0), manifest(JOBS // 2), manifest(JOBS)
    real_store.load(old)
    lock, chunks = begin(real_store, new, lease_s=0.5)
    lock.step(0, len(chunks))
    t0 = time.monotonic()
    plan = real_store.load(newer, allow_orphaning=True)  # waits out the lease, finishes `new`, then loads
    assert time.monotonic() - t0 >= 0.4
    assert listed(real_store) == {j.job_id for j in newer.jobs}
    assert {e.job_id for e in plan.orphaned} == {j.job_id for j in new.jobs} - {j.job_id for j in newer.jobs}


def test_no_step_sends_much_at_any_size(real_store, real_redis):
    """The one-script load sent the whole manifest as one argument (past proto-max-bulk-len at
    ~470,000 jobs) and held Redis for seconds; each step carries one chunk of CHUNK_ACTIONS
    jobs (how long one takes is bench/load_pause.py's business)."""
    m = manifest(0, n=5 * CHUNK_ACTIONS)
    payload = build_payload(m, real_store.keys, time.time())
    chunks = _chunks(payload, plan_diff(real_redis, real_store.keys, payload), real_store.keys)
    assert len(chunks) == 5 and max(len(c) for c in chunks) < 1024 * 1024
    plan = real_store.load(m)
    assert len(plan.added) == 5 * CHUNK_ACTIONS and listed(real_store) == {j.job_id for j in m.jobs}
