"""What a job reference names: a job_id, a job name or a job_id prefix (fakeredis and redis-server)."""

from __future__ import annotations

from scheduler.manifest import parse_manifest
from scheduler.states import JobState
from scheduler.store.actions import apply_action

JOBS = 'schema_version = 1\n[[jobs]]\nname = "target"\nmodel = "m"\n[[jobs]]\nname = "other"\nmodel = "m"\nseed = 1\n'


def test_an_exact_job_id_means_that_job_even_when_another_job_is_named_so(store):
    manifest = parse_manifest(JOBS, "m.toml")
    store.load(manifest)
    target, other = (job.job_id for job in manifest.jobs)
    # A store loaded before the loader refused names shaped like job ids: "other" renamed to
    # target's id, as a manifest could then do.
    store.redis.hdel(store.keys.names, "other")
    store.redis.hset(store.keys.names, target, other)
    store.redis.hset(store.keys.job(other), "name", target)
    assert store.jobs.resolve(target) == target
    # what `fleet cancel <target's id>` does
    apply_action(store.redis, store.keys, "cancel", [store.jobs.resolve(target)])
    assert store.jobs.get(target).state is JobState.CANCELED
    assert store.jobs.get(other).state is JobState.PENDING
    assert store.jobs.resolve(other) == other  # the renamed job stays reachable by its own id
