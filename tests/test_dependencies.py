"""`after` dependencies: release on finish, block on failure or cancel, unblock on retry, survive reloads."""

from __future__ import annotations

import pytest
from test_claims import HOST

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass
from scheduler.states import JobState, Outcome
from scheduler.store.actions import apply_action
from scheduler.store.claims import Claims

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
    apply_action(store.redis, store.keys, "retry", [store.jobs.resolve("train")], reset=True)
    assert [state(store, n) for n in ("eval", "deploy")] == [JobState.PENDING, JobState.PENDING]
    assert store.jobs.get(run(claims, classes)).name == "train"
    assert store.jobs.get(run(claims, classes)).name == "eval"


def test_cancelled_parent_blocks_and_a_new_child_of_a_failed_parent_starts_blocked(store):
    claims, classes = setup(store)
    apply_action(store.redis, store.keys, "cancel", [store.jobs.resolve("train")])
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


DUPLICATED_PARENT = PIPELINE.replace('after = ["train"]', 'after = ["train", "train"]')


def test_a_parent_named_twice_is_one_edge_and_the_child_runs_once_it_finishes(store):
    """Before, the child waited for two finishes of its one parent and stayed pending forever."""
    claims, classes = setup(store, DUPLICATED_PARENT)
    order = [store.jobs.get(run(claims, classes)).name for _ in range(3)]
    assert order == ["train", "eval", "deploy"]


def test_a_parent_named_twice_loads_with_a_warning_naming_the_job_and_the_name():
    manifest = parse_manifest(DUPLICATED_PARENT, "p.toml")
    assert manifest.job_named("eval").scheduling["after"] == ["train"]
    [warning] = manifest.warnings
    assert "jobs[1] 'eval'" in str(warning) and warning.field == "after" and "'train'" in warning.message


def doubled_parent_manifest():
    """PIPELINE with eval's parent listed twice, built past the loader (which now merges repeated
    names): the payload an old loader sent."""
    import dataclasses

    manifest = parse_manifest(PIPELINE, "p.toml")
    eval_job = manifest.job_named("eval")
    doubled = dataclasses.replace(eval_job, scheduling={**eval_job.scheduling, "after": ["train", "train"]})
    return dataclasses.replace(manifest, jobs=tuple(doubled if j is eval_job else j for j in manifest.jobs))


def test_the_store_counts_a_repeated_parent_once_whatever_the_payload_says(store):
    """Defence in depth under the loader: a payload listing a parent twice still makes the
    child wait for one finish."""
    manifest = doubled_parent_manifest()
    store.load(manifest)
    classes = list({c.class_id: c for c in (ConstraintClass.of(j, {}) for j in manifest.jobs)}.values())
    claims = Claims(store.redis, store.keys)
    assert [store.jobs.get(run(claims, classes)).name for _ in range(3)] == ["train", "eval", "deploy"]


def test_a_store_stranded_by_a_repeated_parent_heals_on_the_next_reload(store):
    """A child an old load left waiting for two finishes of one parent (waits 2) is recounted by
    the next load of the same file."""
    store.load(doubled_parent_manifest())
    store.redis.hset(store.keys.job(store.jobs.resolve("eval")), "waits", 2)  # what the old script counted
    claims, classes = setup(store, DUPLICATED_PARENT)
    assert [store.jobs.get(run(claims, classes)).name for _ in range(3)] == ["train", "eval", "deploy"]


KINDS = """schema_version = 1
[[jobs]]
name = "train"
model = "cnn"
max_attempts = 1
[[jobs]]
name = "report"
model = "cnn"
mode = "report"
after = ["train"]
[[jobs]]
name = "cleanup"
model = "cnn"
mode = "cleanup"
after_any = ["train"]
[[jobs]]
name = "alert"
model = "cnn"
mode = "alert"
after_failed = ["train"]
[[jobs]]
name = "page"
model = "cnn"
mode = "page"
after = ["alert"]
"""


def states(store, *names):
    return {n: state(store, n).value for n in names}


def test_a_failed_parent_releases_after_any_and_after_failed_and_blocks_after(store):
    claims, classes = setup(store, KINDS)
    assert states(store, "report", "cleanup", "alert", "page") == dict.fromkeys(
        ("report", "cleanup", "alert", "page"), "pending")
    assert store.jobs.get(run(claims, classes, Outcome.FAILED)).name == "train"
    assert states(store, "report", "cleanup", "alert") == {"report": "blocked", "cleanup": "pending",
                                                          "alert": "pending"}
    ran = {store.jobs.get(run(claims, classes)).name for _ in range(2)}
    assert ran == {"cleanup", "alert"}
    assert store.jobs.get(run(claims, classes)).name == "page"  # alert finished: its `after` child runs
    assert claims.claim("w", HOST, classes) is None


def test_a_finished_parent_blocks_after_failed_and_its_descendants_and_a_rerun_unblocks_them(store):
    claims, classes = setup(store, KINDS)
    run(claims, classes)
    assert states(store, "report", "cleanup", "alert", "page") == {
        "report": "pending", "cleanup": "pending", "alert": "blocked", "page": "blocked"}
    assert store.jobs.get(store.jobs.resolve("alert")).reason == "blocked: train did not fail"
    assert store.jobs.get(store.jobs.resolve("page")).reason == "blocked: train did not fail"  # the root cause
    assert {store.jobs.get(run(claims, classes)).name for _ in range(2)} == {"report", "cleanup"}
    assert claims.claim("w", HOST, classes) is None
    apply_action(store.redis, store.keys, "rerun", [store.jobs.resolve("train")])
    assert states(store, "alert", "page") == {"alert": "pending", "page": "pending"}
    assert store.jobs.get(run(claims, classes, Outcome.FAILED)).name == "train"
    assert store.jobs.get(run(claims, classes)).name == "alert"  # the rerun failed: now the alert goes


def test_a_canceled_parent_releases_after_any_only(store):
    claims, classes = setup(store, KINDS)
    apply_action(store.redis, store.keys, "cancel", [store.jobs.resolve("train")])
    assert states(store, "report", "cleanup", "alert") == {"report": "blocked", "cleanup": "pending",
                                                          "alert": "blocked"}
    assert store.jobs.get(run(claims, classes)).name == "cleanup"
    assert claims.claim("w", HOST, classes) is None


def test_a_child_added_after_its_parent_ended_is_judged_by_its_kind(store):
    claims, classes = setup(store, KINDS)
    run(claims, classes)  # train finished
    more = KINDS + ('[[jobs]]\nname = "late-alert"\nmodel = "cnn"\nmode = "late"\nafter_failed = ["train"]\n'
                    '[[jobs]]\nname = "late-cleanup"\nmodel = "cnn"\nmode = "late2"\nafter_any = ["train"]\n')
    setup(store, more)
    assert states(store, "late-alert", "late-cleanup") == {"late-alert": "blocked", "late-cleanup": "pending"}
    assert store.jobs.get(store.jobs.resolve("late-alert")).reason == "blocked: train did not fail"


def test_explain_says_what_each_kind_waits_for(store):
    from scheduler.explain import explanation

    setup(store, KINDS)
    view = store.explain_view(store.jobs.get(store.jobs.resolve("alert")))
    summary = explanation(view).summary
    assert "Waiting for train (pending) to fail" in summary and "after_failed = ['train']" in summary, summary


@pytest.mark.parametrize("extra, field, words", [
    ('after = ["train"]\nafter_any = ["train"]', "after_any", "'train' is also in after"),
    ('after_failed = ["trian"]', "after_failed", "did you mean 'train'"),
    ('after_any = ["child"]', "after_any", "cannot run after itself"),
])
def test_dependency_fields_are_checked_like_after(extra, field, words):
    from scheduler.errors import ManifestError

    text = ('schema_version = 1\n[[jobs]]\nname = "train"\nmodel = "m"\n[[jobs]]\nname = "child"\nmodel = "m"\n'
            'seed = 1\n' + extra)
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, "p.toml")
    problem = next(p for p in err.value.problems if p.field == field)
    assert words in problem.message and "'child'" in str(problem), str(problem)


def test_a_cycle_through_after_failed_is_refused():
    from scheduler.errors import ManifestError

    text = ('schema_version = 1\n[[jobs]]\nname = "a"\nmodel = "m"\nafter = ["b"]\n'
            '[[jobs]]\nname = "b"\nmodel = "m"\nseed = 1\nafter_failed = ["a"]\n')
    with pytest.raises(ManifestError, match="dependency cycle"):
        parse_manifest(text, "p.toml")
