"""Claims, leases and the reaper against fakeredis and a real redis-server (the same tests)."""

from __future__ import annotations

import time

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import JobState, Outcome
from scheduler.store.claims import Claims

HOST = HostResources("box", cores=8, ram_total_gib=64, ram_available_gib=64,
                     gpus=(GpuInfo(0, "small", 24, 24, uuid="GPU-small"), GpuInfo(1, "big", 80, 80, uuid="GPU-big")))


def load(store, jobs: str, extra: str = ""):
    manifest = parse_manifest(f"schema_version = 1\n{extra}\n{jobs}", "m.toml")
    store.load(manifest)
    return manifest, [ConstraintClass.of(j, manifest.hosts) for j in manifest.jobs]


def job(name: str, **fields) -> str:
    body = "".join(f"{k} = {v!r}\n".replace("True", "true").replace("False", "false") for k, v in fields.items())
    return f'[[jobs]]\nname = "{name}"\nmodel = "m"\nseed = {abs(hash(name)) % 10**6}\n{body}'


def test_a_fitting_class_behind_many_that_do_not_fit_is_still_found(store):
    too_big = "".join(job(f"huge{i}", min_ram_gib=100 + i, priority=5) for i in range(40))
    _, classes = load(store, too_big + job("fits", min_ram_gib=1))
    claim = Claims(store.redis, store.keys).claim("w", HOST, classes)
    assert claim is not None and store.jobs.get(claim.job_id).name == "fits"


def test_only_the_classes_the_worker_may_run_are_claimed_wherever_they_sit_in_its_list(store):
    _, classes = load(store, job("best", min_ram_gib=1, priority=9) + job("mid", min_ram_gib=2, priority=5) +
                      job("low", min_ram_gib=3, priority=1))
    best, mid, low = classes
    claims = Claims(store.redis, store.keys)

    def name(claim) -> str | None:
        return claim and store.jobs.get(claim.job_id).name

    assert name(claims.claim("w", HOST, [low, mid])) == "mid"  # the last in the list
    assert name(claims.claim("w", HOST, [low])) == "low"  # the only one
    assert claims.claim("w", HOST, [mid, low]) is None  # best is pending, but this worker may not run it
    assert name(claims.claim("w", HOST, [best, low])) == "best"  # the first in the list


def test_small_job_takes_the_smallest_gpu_that_fits(store):
    _, classes = load(store, job("small", require_cuda=True, min_vram_gib=10) +
                      job("large", require_cuda=True, min_vram_gib=60, priority=-1))
    claims = Claims(store.redis, store.keys)
    first = claims.claim("w", HOST, classes)
    assert store.jobs.get(first.job_id).name == "small" and first.gpu_keys == ("GPU-small",)
    second = claims.claim("w", HOST, classes)
    assert second.gpu_keys == ("GPU-big",)


def test_ledger_stops_oversubscription_and_is_given_back(store):
    _, classes = load(store, job("a", min_ram_gib=40) + job("b", min_ram_gib=40))
    claims = Claims(store.redis, store.keys)
    first = claims.claim("w1", HOST, classes)
    assert claims.claim("w2", HOST, classes) is None  # 80 > 64 GiB on the same host
    claims.complete(first.job_id, first.attempt, "w1", Outcome.FINISHED)
    assert claims.claim("w2", HOST, classes) is not None


def test_failure_retries_until_max_attempts_then_fails(store):
    _, classes = load(store, job("flaky", max_attempts=2, retry_delay_s=0))
    claims = Claims(store.redis, store.keys)
    c1 = claims.claim("w", HOST, classes)
    assert claims.complete(c1.job_id, 1, "w", Outcome.FAILED, exit_code=1).state is JobState.PENDING
    c2 = claims.claim("w", HOST, classes)
    assert c2.attempt == 2
    assert claims.complete(c2.job_id, 2, "w", Outcome.FAILED, exit_code=1).state is JobState.FAILED
    attempts = claims.attempts(c1.job_id)
    assert [(a["attempt"], a["outcome"], a["exit_code"]) for a in attempts] == [(1, "failed", 1), (2, "failed", 1)]


def test_interrupted_attempt_does_not_count(store):
    _, classes = load(store, job("j", max_attempts=1))
    claims = Claims(store.redis, store.keys)
    c = claims.claim("w", HOST, classes)
    assert claims.complete(c.job_id, c.attempt, "w", Outcome.INTERRUPTED).state is JobState.PENDING


def test_reaper_returns_expired_lease_as_lost_and_fences_the_old_worker(store):
    _, classes = load(store, job("j", retry_delay_s=0))
    claims = Claims(store.redis, store.keys, lease_s=2)
    now = time.time()
    c = claims.claim("dead", HOST, classes, now=now)
    claims.reap(now=now)  # reapers tick more often than a lease lasts
    assert claims.reap(now=now + 1.5) == []
    ended = claims.reap(now=now + 3)
    assert [(e.job_id, e.state, e.outcome) for e in ended] == [(c.job_id, JobState.PENDING, Outcome.LOST)]
    c2 = claims.claim("alive", HOST, classes)
    assert c2.attempt == 2
    # The dead worker comes back and reports: fenced off, the new attempt is untouched.
    assert claims.renew(c.job_id, "dead", c.attempt) == "lost"
    assert claims.complete(c.job_id, c.attempt, "dead", Outcome.FINISHED) is None
    assert store.jobs.get(c.job_id).state is JobState.RUNNING
    assert claims.renew(c2.job_id, "alive", c2.attempt) == "ok"


def test_leases_do_not_age_while_no_reaper_reaches_redis(store):
    _, classes = load(store, job("j"))
    claims = Claims(store.redis, store.keys, lease_s=3)
    now = time.time()
    claims.reap(now=now)
    c = claims.claim("w", HOST, classes, now=now)
    # Nobody reaped for 100 s (Redis or every reaper was away): the lease is pushed back
    # by those 100 s, not reaped.
    assert claims.reap(now=now + 100) == []
    assert store.jobs.get(c.job_id).state is JobState.RUNNING
    assert claims.reap(now=now + 101) == []
    assert claims.reap(now=now + 102.9) == []  # 3 s of lease counted from the end of the silence
    assert claims.reap(now=now + 103.5)[0].outcome is Outcome.LOST


def test_an_outage_shorter_than_a_lease_that_spans_the_renewals_costs_no_lease(store):
    """Redis out from 0.5 s to 3.2 s into a 3 s lease renewed each second: the worker's
    renewals at 1, 2 and 3 s all failed, yet it is alive and renews at 3.5 s."""
    _, classes = load(store, job("j"))
    claims = Claims(store.redis, store.keys, lease_s=3)
    now = time.time()
    c = claims.claim("w", HOST, classes, now=now)
    claims.reap(now=now + 0.4)
    assert claims.reap(now=now + 3.3) == []
    assert claims.renew(c.job_id, "w", c.attempt, now=now + 3.5) == "ok"
    assert claims.reap(now=now + 4.5) == [] and store.jobs.get(c.job_id).state is JobState.RUNNING


def test_a_gap_shorter_than_the_last_reapers_own_tick_is_no_silence(store, caplog):
    """Busy workers reap once a renewal (10 s at 30 s leases); an idle worker that reaps every
    second 9 s after one must not take that for an outage and push every lease back."""
    _, classes = load(store, job("j"))
    claims = Claims(store.redis, store.keys, lease_s=30)
    now = time.time()
    c = claims.claim("w", HOST, classes, now=now)
    deadline = store.redis.zscore(store.keys.running, c.job_id)
    claims.reap(now=now, every_s=10)
    claims.reap(now=now + 9, every_s=1)
    assert store.redis.zscore(store.keys.running, c.job_id) == deadline
    assert "no reaper ran" not in caplog.text
    claims.reap(now=now + 12, every_s=1)  # past two of the last reaper's (1 s) ticks: a silence
    assert store.redis.zscore(store.keys.running, c.job_id) == deadline + 3
    assert "no reaper ran for 3.0s" in caplog.text and "1 lease(s) pushed back" in caplog.text


def test_a_silence_with_no_lease_to_push_back_is_not_reported(store, caplog):
    load(store, job("j"))
    claims = Claims(store.redis, store.keys)
    store.redis.set(store.keys.reaper_tick, time.time() - 90)  # a tick as fleet wrote it before: a bare number
    claims.reap()
    assert "no reaper ran" not in caplog.text


def test_orphaned_job_is_not_claimed(store):
    manifest, classes = load(store, job("keep") + job("drop"))
    store.load(parse_manifest("schema_version = 1\n" + job("keep"), "m.toml"))
    claims = Claims(store.redis, store.keys)
    assert store.jobs.get(claims.claim("w", HOST, classes).job_id).name == "keep"
    assert claims.claim("w", HOST, classes) is None


def heads_consistent(store) -> None:
    """The claim's shortcut: heads holds each non-empty class at its best job's score, and nothing else."""
    r, k = store.redis, store.keys
    expected = {}
    for key in r.scan_iter(match=k.pending("*")):
        best = r.zrange(key, 0, 0, withscores=True)
        if best:
            expected[key.decode()[len(k.pending_prefix):]] = best[0][1]
    actual = {m.decode(): s for m, s in r.zrange(k.heads, 0, -1, withscores=True)}
    assert actual == expected


def test_heads_stay_consistent_through_random_operations(store):
    import random

    from scheduler.store.actions import apply_action

    rng = random.Random(11)
    jobs = "".join(job(f"j{i}", priority=rng.randint(-3, 3), min_ram_gib=rng.choice([1, 8, 30])) for i in range(40))
    _, classes = load(store, jobs)
    claims = Claims(store.redis, store.keys)
    running = []
    for _ in range(300):
        op = rng.random()
        if op < 0.35:
            c = claims.claim("w", HOST, classes)
            if c:
                running.append(c)
        elif op < 0.6 and running:
            c = running.pop(rng.randrange(len(running)))
            claims.complete(c.job_id, c.attempt, "w", rng.choice([Outcome.FINISHED, Outcome.FAILED,
                                                                  Outcome.INTERRUPTED]))
        else:
            ids = [m.decode() for m in store.redis.zrange(store.keys.jobs, 0, -1)]
            apply_action(store.redis, store.keys, rng.choice(["hold", "release", "cancel", "retry"]), [rng.choice(ids)])
        heads_consistent(store)


def test_a_damaged_class_record_is_never_read_as_needing_nothing(store):
    _, classes = load(store, job("huge", min_ram_gib=100))  # more than HOST's 64 GiB
    claims = Claims(store.redis, store.keys)
    assert claims.claim("w", HOST, classes) is None
    for damaged in (b"{}", b"not json", b'{"min_ram_gib": "lots"}'):
        store.redis.hset(store.keys.classes, classes[0].class_id, damaged)
        assert claims.claim("w", HOST, classes) is None, damaged
    assert store.jobs.counts()["pending"] == 1
