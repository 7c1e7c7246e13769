"""Loading a manifest into the store: idempotent, atomic, never loses or reruns a job."""

from __future__ import annotations

import json
import re

import pytest
from support.stores import lua_heap_bytes

from scheduler.embedded_redis import dump_namespace
from scheduler.errors import NotFoundError
from scheduler.manifest import parse_manifest
from scheduler.states import JobState

BASE = """
schema_version = 1
name = "t"
[defaults]
min_ram_gib = 1
split_recipe = "host"
[hosts.cpu-1]
deny_jobs = ["cnn"]
[[jobs]]
name = "a"
model = "mlp"
hyper = { lr = 0.1 }
[[jobs]]
name = "b"
model = "cnn"
priority = 5
"""


def manifest(text: str = BASE):
    return parse_manifest(text, "t.toml")


def test_first_load_adds_every_job_as_pending(store):
    plan = store.load(manifest())
    assert [e.name for e in plan.added] == ["a", "b"]
    assert plan.changed
    counts = store.jobs.counts()
    assert counts["pending"] == 2
    record = store.jobs.get(store.jobs.resolve("b"))
    assert record.state is JobState.PENDING and record.priority == 5 and record.in_manifest


def test_unchanged_reload_writes_nothing(store, any_redis):
    store.load(manifest())
    before = dump_namespace(any_redis)
    plan = store.load(manifest())
    assert not plan.changed and len(plan.unchanged) == 2
    assert dump_namespace(any_redis) == before


def test_priority_change_updates_in_place_without_new_job(store):
    store.load(manifest())
    job_id = store.jobs.resolve("b")
    plan = store.load(manifest(BASE.replace("priority = 5", "priority = 9")))
    assert [e.name for e in plan.updated] == ["b"] and not plan.added
    assert store.jobs.get(job_id).priority == 9


def test_rename_keeps_identity_and_moves_the_name(store):
    store.load(manifest())
    job_id = store.jobs.resolve("a")
    plan = store.load(manifest(BASE.replace('name = "a"', 'name = "a2"')))
    assert [e.name for e in plan.updated] == ["a2"]
    assert store.jobs.resolve("a2") == job_id
    with pytest.raises(NotFoundError):
        store.jobs.resolve("a")


def test_removed_job_is_orphaned_not_deleted_and_revived_later(store):
    store.load(manifest())
    job_id = store.jobs.resolve("a")
    without_a = BASE.replace('[[jobs]]\nname = "a"\nmodel = "mlp"\nhyper = { lr = 0.1 }\n', "")
    plan = store.load(manifest(without_a))
    assert [e.name for e in plan.orphaned] == ["a"]
    record = store.jobs.get(job_id)
    assert not record.in_manifest and not record.indexed and record.state is JobState.PENDING
    assert store.jobs.counts()["orphaned"] == 1
    plan = store.load(manifest())
    assert [e.name for e in plan.revived] == ["a"]
    assert store.jobs.get(job_id).indexed


def test_dry_run_writes_nothing(real_store, real_redis):
    plan = real_store.load(manifest(), dry_run=True)
    assert len(plan.added) == 2
    assert dump_namespace(real_redis) == {}


def test_finished_job_stays_finished_across_reload(real_store, real_redis):
    real_store.load(manifest())
    job_id = real_store.jobs.resolve("a")
    real_redis.hset(real_store.keys.job(job_id), "state", JobState.FINISHED.value)
    plan = real_store.load(manifest(BASE.replace("lr = 0.1 }", "lr = 0.1 }\npriority = 3")))
    assert [e.name for e in plan.updated] == ["a"]
    assert real_store.jobs.get(job_id).state is JobState.FINISHED


def test_foreign_value_at_a_job_key_is_a_clear_error_and_nothing_is_written(real_store, real_redis):
    from scheduler.errors import StoreError

    job = manifest().jobs[1]
    real_redis.set(real_store.keys.job(job.job_id), "not a hash")
    before = dump_namespace(real_redis)
    with pytest.raises(StoreError, match=r"holds a string"):
        real_store.load(manifest())
    assert dump_namespace(real_redis) == before


WITH_AFTER = BASE + """[[jobs]]
name = "c"
model = "mlp"
after = ["a"]
"""


@pytest.mark.parametrize("where", ["heads", "pending state index", "pending zset of a's class", "deps of c",
                                   "dependents of a", "rq record of c"])
def test_a_foreign_value_at_any_key_a_load_writes_stops_it_before_its_first_write(real_store, real_redis, where):
    """Redis keeps a script's writes up to its error: found midway, a foreign value left a
    half-applied manifest (and one at heads hid every pending job from every claim)."""
    from scheduler.errors import StoreError

    keys = real_store.keys
    real_store.load(manifest())
    a, c = manifest(WITH_AFTER).jobs[0], manifest(WITH_AFTER).jobs[2]
    key = {"heads": keys.heads, "pending state index": keys.state(JobState.PENDING.value),
           "pending zset of a's class": keys.pending(real_store.jobs.get(a.job_id).class_id), "deps of c": keys.deps_prefix + c.job_id,
           "dependents of a": keys.dependents_prefix + a.job_id, "rq record of c": keys.rq_job(c.job_id)}[where]
    real_redis.delete(key)
    real_redis.set(key, "foreign")
    before = dump_namespace(real_redis)
    with pytest.raises(StoreError, match=rf"{re.escape(key)} holds a string, not fleet.s .*delete it"):
        real_store.load(manifest(WITH_AFTER))
    assert dump_namespace(real_redis) == before


def test_rq_sees_the_job_records(real_store, real_redis):
    real_store.load(manifest())
    job_id = real_store.jobs.resolve("a")
    raw = real_redis.hgetall(real_store.keys.rq_job(job_id))
    assert raw[b"origin"] == b"fleet" and raw[b"description"] == b"a" and raw[b"status"] == b"queued"
    # rq's records of a finished job expire (fleet keeps its own outcome); a pending one's do not
    assert raw[b"result_ttl"] == b"86400" and raw[b"failure_ttl"] == b"604800"
    assert real_redis.ttl(real_store.keys.rq_job(job_id)) == -1


def test_namespaces_share_one_redis_without_touching_each_other(any_redis):
    from support.stores import make_store

    one, two = make_store(any_redis, "one"), make_store(any_redis, "two")
    one.load(manifest())
    assert two.jobs.counts()["pending"] == 0
    two.load(manifest())
    assert one.jobs.counts()["pending"] == 2 and two.jobs.counts()["pending"] == 2
    assert all(k.startswith(b"{one}:") or k.startswith(b"{two}:") for k in any_redis.keys("*"))


def test_plan_json_shape(store):
    data = store.load(manifest()).to_dict()
    assert set(data) >= {"added", "updated", "unchanged", "orphaned", "revived", "changed", "dry_run"}
    assert json.dumps(data)


def test_a_big_load_leaves_no_garbage_in_redis(real_store, real_redis):
    """The load decodes the whole manifest inside Redis's Lua heap. Left there as garbage (~3 KB
    a job), it was reclaimed a step per later script call, which more than doubled the time of
    every claim for a minute after a 100,000-job load."""
    text = "schema_version = 1\n" + "".join(f'[[jobs]]\nname = "j{i}"\nmodel = "m"\nseed = {i}\n'
                                             for i in range(2000))
    real_store.load(manifest())  # the scripts are loaded, and the heap at its working size
    before = lua_heap_bytes(real_redis)
    plan = real_store.load(parse_manifest(text, "big.toml"), allow_orphaning=True)  # a and b make way
    assert len(plan.added) == 2000
    grown = lua_heap_bytes(real_redis) - before
    assert grown < 256 * 1024, f"Redis's Lua heap grew by {grown} bytes over a 2,000-job load"


def test_status_names_a_foreign_value_where_a_waiting_job_should_be(store):
    """`fleet status` names a few jobs nobody can run; a key there that fleet did not write is
    reported by name, not shown as a job without a name."""
    from scheduler.errors import StoreError
    from scheduler.status import status_document

    store.load(manifest())
    job_id = store.jobs.resolve("a")
    # no live worker: one need for both classes
    assert [(u["reason"], sorted(u["jobs"])) for u in status_document(store)["unrunnable"]] == \
        [("No live worker", ["a", "b"])]
    store.redis.delete(store.keys.job(job_id))
    store.redis.set(store.keys.job(job_id), "not a hash")
    with pytest.raises(StoreError, match=re.escape(store.keys.job(job_id))):
        status_document(store)


def jobs_text(names) -> str:
    return "schema_version = 1\n" + "".join(f'[[jobs]]\nname = "{n}"\nmodel = "m"\nhyper = {{ n = "{n}" }}\n'
                                             for n in names)


@pytest.mark.parametrize("listed,kept", [(["a", "b"], []),
                                         ([f"j{i}" for i in range(20)], [f"j{i}" for i in range(9)])],
                         ids=["every-job", "ten-and-more-than-half"])
def test_a_load_that_would_orphan_the_fleet_is_refused_and_writes_nothing(store, any_redis, listed, kept):
    """Before, a zero-job (or truncated) manifest orphaned every job with exit 0."""
    from scheduler.errors import ManifestError

    store.load(parse_manifest(jobs_text(listed), "t.toml"))
    before = dump_namespace(any_redis)
    truncated = parse_manifest(jobs_text(kept), "t.toml")
    with pytest.raises(ManifestError) as err:
        store.load(truncated)
    [problem] = err.value.problems
    orphaned = len(listed) - len(kept)
    assert problem.file == "t.toml" and f"orphan {orphaned} of the {len(listed)} jobs" in problem.message
    assert "--allow-orphaning" in problem.message
    assert dump_namespace(any_redis) == before
    dry = store.load(truncated, dry_run=True)
    assert len(dry.orphaned) == orphaned and dry.refused and "would be refused" in dry.refused.message
    assert dump_namespace(any_redis) == before
    plan = store.load(truncated, allow_orphaning=True)
    assert len(plan.orphaned) == orphaned and plan.refused is None
    assert store.jobs.counts()["orphaned"] == orphaned


@pytest.mark.parametrize("listed,kept", [(["a", "b"], ["a"]),
                                         ([f"j{i}" for i in range(20)], [f"j{i}" for i in range(10)]),
                                         ([f"j{i}" for i in range(9)], ["j0"])],
                         ids=["one-of-two", "exactly-half", "eight-of-nine"])
def test_a_load_orphaning_less_than_the_thresholds_applies(store, listed, kept):
    store.load(parse_manifest(jobs_text(listed), "t.toml"))
    plan = store.load(parse_manifest(jobs_text(kept), "t.toml"))
    assert len(plan.orphaned) == len(listed) - len(kept) and plan.refused is None


def test_a_manifest_at_a_path_that_is_not_utf8_loads(store, tmp_path):
    """Before, a Latin-1 file name failed the load: the path and the default manifest name went to
    the store (and its JSON) as text Python could not encode."""
    import os

    from scheduler.manifest import load_manifest

    raw = os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9.toml")
    with open(raw, "wb") as fh:
        fh.write(BASE.replace('name = "t"\n', "").encode())
    plan = store.load(load_manifest(os.fsdecode(raw)))
    assert [e.name for e in plan.added] == ["a", "b"]
    meta = store.redis.hgetall(store.keys.manifest_meta)
    assert meta[b"path"].decode("utf-8") == f"{tmp_path}/caf\\xe9.toml" and meta[b"name"] == b"caf\\xe9"
    assert not store.load(load_manifest(os.fsdecode(raw))).changed


def test_a_reload_writes_back_names_deleted_from_the_store(store, any_redis):
    """fleet's advice for a damaged `names` key is to delete it and reload: the reload must then
    restore every name, though no job changed."""
    store.load(manifest())
    job_id = store.jobs.resolve("a")
    any_redis.delete(store.keys.names)
    plan = store.load(manifest())
    assert plan.changed and not plan.updated
    assert store.jobs.resolve("a") == job_id and store.jobs.resolve("b")
    assert not store.load(manifest()).changed  # and the next reload writes nothing again
