"""`after` dependencies: release on finish, block on failure or cancel, unblock on retry, survive reloads."""

from __future__ import annotations

from test_claims import HOST

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass
from scheduler.states import JobState
from scheduler.store.actions import act
from scheduler.store.claims import Claims, Outcome

PIPELINE = """schema_version = 1
[[jobs]]
name = "train"
model = "cnn"
max_attempts = 1
[[jobs]]
name = "eval"
model = "cnn"
mode = "eval"
after = ["train"]
[[jobs]]
name = "deploy"
model = "cnn"
mode = "deploy"
after = ["eval"]
"""


def setup(store, text=PIPELINE):
    manifest = parse_manifest(text, "p.toml")
    store.load(manifest)
    classes = list({c.class_id: c for c in (ConstraintClass.of(j, {}) for j in manifest.jobs)}.values())
    return Claims(store.redis, store.keys), classes


def state(store, name):
    return store.jobs.get(store.jobs.resolve(name)).state


def run(claims, classes, outcome=Outcome.FINISHED):
    c = claims.claim("w", HOST, classes)
    assert c is not None
    claims.complete(c.job_id, c.attempt, "w", outcome, 0 if outcome is Outcome.FINISHED else 1)
    return c.job_id


def test_children_wait_for_parents_and_are_released_in_order(store):
    claims, classes = setup(store)
    order = [store.jobs.get(run(claims, classes)).name for _ in range(3)]
    assert order == ["train", "eval", "deploy"]
    assert claims.claim("w", HOST, classes) is None


def test_failure_blocks_descendants_and_retry_unblocks_them(store):
    claims, classes = setup(store)
    run(claims, classes, Outcome.FAILED)
    assert [state(store, n) for n in ("train", "eval", "deploy")] == [JobState.FAILED, JobState.BLOCKED,
                                                                        JobState.BLOCKED]
    assert "train did not finish" in store.jobs.get(store.jobs.resolve("eval")).reason
    assert claims.claim("w", HOST, classes) is None
    act(store.redis, store.keys, "retry", [store.jobs.resolve("train")], reset=True)
    assert [state(store, n) for n in ("eval", "deploy")] == [JobState.PENDING, JobState.PENDING]
    assert store.jobs.get(run(claims, classes)).name == "train"
    assert store.jobs.get(run(claims, classes)).name == "eval"


def test_cancelled_parent_blocks_and_a_new_child_of_a_failed_parent_starts_blocked(store):
    claims, classes = setup(store)
    act(store.redis, store.keys, "cancel", [store.jobs.resolve("train")])
    assert state(store, "eval") is JobState.BLOCKED
    more = PIPELINE + '[[jobs]]\nname = "report"\nmodel = "cnn"\nmode = "report"\nafter = ["train"]\n'
    setup(store, more)
    assert state(store, "report") is JobState.BLOCKED


def test_reload_that_drops_a_dependency_releases_the_child(store):
    claims, classes = setup(store)
    setup(store, PIPELINE.replace('after = ["eval"]', "after = []"))
    claimable = {store.jobs.get(claims.claim("w", HOST, classes).job_id).name for _ in range(2)}
    assert claimable == {"train", "deploy"}  # eval still waits for train


def test_unchanged_reload_of_a_pipeline_still_writes_nothing(store, any_redis):
    from scheduler.embedded_redis import dump_namespace

    setup(store)
    before = dump_namespace(any_redis)
    assert not store.load(parse_manifest(PIPELINE, "p.toml")).changed
    assert dump_namespace(any_redis) == before
