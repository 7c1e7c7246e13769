"""The order claims take pending jobs (scheduler/queue_order.py, pending.lua): priority first, then
within a priority the bigger whole-GiB ``min_vram_gib``, then load order; on fakeredis and a real
redis-server, checked against the order real claims take."""

from __future__ import annotations

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_claims import HOST, job, load

from scheduler.manifest import parse_manifest
from scheduler.manifest.fields import PRIORITY_RANGE
from scheduler.matching import ConstraintClass
from scheduler.queue_order import VRAM_STEP, queue_rank, width
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import JobState, Outcome
from scheduler.store.actions import apply_action
from scheduler.store.claims import Claims

def test_higher_priority_first_then_fifo(store):
    _, classes = load(store, job("low1") + job("high", priority=5) + job("low2"))
    claims = Claims(store.redis, store.keys)
    order = [store.jobs.get(claims.claim("w", HOST, classes).job_id).name for _ in range(3)]
    assert order == ["high", "low1", "low2"]
    assert claims.claim("w", HOST, classes) is None


def test_within_a_priority_the_biggest_gpu_need_goes_first_and_equal_needs_keep_load_order(store):
    _, classes = load(store, job("small1", require_cuda=True, min_vram_gib=8) +
                      job("cpu", min_ram_gib=1) +
                      job("big", require_cuda=True, min_vram_gib=60) +
                      job("small2", require_cuda=True, min_vram_gib=8) +
                      job("urgent-small", require_cuda=True, min_vram_gib=4, priority=1))
    claims = Claims(store.redis, store.keys)
    order = [store.jobs.get(claims.claim("w", HOST, classes).job_id).name for _ in range(5)]
    assert order == ["urgent-small", "big", "small1", "small2", "cpu"]


def test_a_record_stored_before_ranks_queues_by_priority_until_the_next_load_ranks_it(store):
    from scheduler.queue_order import queue_rank
    from scheduler.store.actions import apply_action

    manifest, classes = load(store, job("old", require_cuda=True, min_vram_gib=40, priority=3))
    job_id = manifest.jobs[0].job_id
    r, k = store.redis, store.keys
    r.hdel(k.job(job_id), "rank")  # as an earlier fleet stored it
    apply_action(r, k, "hold", [job_id])
    apply_action(r, k, "release", [job_id])  # re-queued by deps.lua from the record alone
    seq = int(r.hget(k.job(job_id), "seq"))
    assert r.zscore(k.pending(classes[0].class_id), job_id) == queue_rank(3, 0) + seq
    plan = store.load(manifest)
    assert [e.job_id for e in plan.updated] == [job_id]
    assert r.zscore(k.pending(classes[0].class_id), job_id) == queue_rank(3, 40, 1) + seq
    assert not store.load(manifest).changed


# -- the rank, as plain data ---------------------------------------------------------------------

def test_priority_outranks_any_gpu_need_and_a_bigger_need_outranks_a_smaller():
    assert queue_rank(1, 0) < queue_rank(0, 5000)
    assert queue_rank(PRIORITY_RANGE[1], 0) < queue_rank(PRIORITY_RANGE[1] - 1, 999)
    assert queue_rank(0, 40) < queue_rank(0, 39.99) < queue_rank(0, 8) < queue_rank(0, 0)


def test_wider_jobs_go_first_within_a_priority_then_bigger_per_gpu_memory():
    assert queue_rank(0, 0, 8) < queue_rank(0, 80, 4) < queue_rank(0, 0, 4) < queue_rank(0, 79, 1) < queue_rank(0, 0, 0)
    assert queue_rank(1, 0, 0) < queue_rank(0, 999, 64)
    assert queue_rank(0, 0, 16) == queue_rank(0, 0, 64)
    def need(gpus, require_cuda, vram, prefer_cuda=False):
        return ConstraintClass(require_cuda, prefer_cuda, vram, 0.0, 0, (), (), (), gpus=gpus)
    assert width(need(None, True, 0)) == width(need(None, False, 8)) == 1 and width(need(None, False, 0)) == 0
    assert width(need(4, True, 0)) == 4 and width(need(None, False, 0, prefer_cuda=True)) == 0


def test_needs_rank_by_whole_gib_and_from_999_gib_all_alike():
    """Jobs in one whole GiB (23.0 and 23.99) are equals, so load order decides between them."""
    assert queue_rank(0, 23.0) == queue_rank(0, 23.5) == queue_rank(0, 23.99)
    assert queue_rank(0, 999) == queue_rank(0, 1000) == queue_rank(0, 10**6)
    assert queue_rank(0, 0.99) == queue_rank(0, 0)


def test_every_score_stays_exact_in_a_double():
    """Scores are rank + seq in a zset (a double): the lowest rank plus 200 million jobs must not round."""
    worst = queue_rank(PRIORITY_RANGE[0], 0, 0) + VRAM_STEP - 1
    assert worst < 2**53 and float(worst) == worst and float(worst - 1) != float(worst)


# -- the order real claims take ---------------------------------------------------------------

BIG_HOST = HostResources("box", 64, 4096, 4096, (GpuInfo(0, "huge", 4096.0, 4096.0, uuid="GPU-huge"),))
JOB_NEEDS = st.tuples(st.integers(-2, 2), st.sampled_from([0.0, 0.5, 8.0, 8.7, 23.5, 23.99, 40.0, 999.5, 1500.0]))


def claim_order(store, classes, host=BIG_HOST) -> list[str]:
    """Claim (and finish at once) until nothing is left: the names in the order claims took them."""
    claims, names = Claims(store.redis, store.keys), []
    while (c := claims.claim("w", host, classes)) is not None:
        names.append(store.jobs.get(c.job_id).name)
        claims.complete(c.job_id, c.attempt, "w", Outcome.FINISHED, exit_code=0)
    return names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(needs=st.lists(JOB_NEEDS, min_size=1, max_size=8))
def test_claims_take_jobs_by_priority_then_gpus_then_whole_gib_of_vram_then_load_order(store, needs):
    store.redis.flushall()
    jobs = [{"name": f"j{i}", "model": "m", "seed": i, "priority": p, "min_vram_gib": v, "min_cores": 0}
            for i, (p, v) in enumerate(needs)]
    manifest = parse_manifest(tomli_w.dumps({"schema_version": 1, "jobs": jobs}), "m.toml")
    store.load(manifest)
    classes = list({c.class_id: c for c in (ConstraintClass.of(j, {}) for j in manifest.jobs)}.values())
    # A job asking GPU memory takes a GPU (one: width 1), a job asking none takes none here.
    documented = sorted(range(len(needs)), key=lambda i: (-needs[i][0], -(needs[i][1] > 0),
                                                          -min(999, int(needs[i][1])), i))
    assert claim_order(store, classes) == [f"j{i}" for i in documented]


def test_a_later_load_queues_new_jobs_behind_equals_already_loaded_wherever_the_file_lists_them(store):
    load(store, job("first") + job("second"))
    manifest, classes = load(store, job("newcomer") + job("first") + job("second"))
    assert claim_order(store, classes) == ["first", "second", "newcomer"]


def test_reprioritising_reorders_without_rerunning_and_keeps_load_order_among_equals(store):
    load(store, job("a") + job("b") + job("c"))
    _, classes = load(store, job("a") + job("b", priority=4) + job("c", priority=4))
    assert claim_order(store, classes) == ["b", "c", "a"]
    assert all(store.jobs.get(store.jobs.resolve(n)).attempts == 1 for n in "abc")


def test_a_failed_attempt_goes_back_to_its_place_ahead_of_jobs_loaded_after_it(store):
    _, classes = load(store, job("flaky", max_attempts=2, retry_delay_s=0) + job("later"))
    claims = Claims(store.redis, store.keys)
    c = claims.claim("w", HOST, classes)
    assert store.jobs.get(c.job_id).name == "flaky"
    assert claims.complete(c.job_id, c.attempt, "w", Outcome.FAILED, exit_code=1).state is JobState.PENDING
    assert claim_order(store, classes) == ["flaky", "later"]


def test_a_released_job_keeps_its_place(store):
    _, classes = load(store, job("a") + job("b") + job("c"))
    ids = [store.jobs.resolve(n) for n in "ab"]
    apply_action(store.redis, store.keys, "hold", ids)
    apply_action(store.redis, store.keys, "release", ids[::-1])
    assert claim_order(store, classes) == ["a", "b", "c"]
