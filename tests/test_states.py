"""scheduler.states.TRANSITIONS against what the store's scripts really do, both ways.

Every operation fleet has (loads that add, drop, edit and re-add jobs; claims; every
attempt Outcome; lease loss and the reaper; cancel, hold, release and retry, from the CLI
and from rq's requeue; `after` chains; drain) is driven through the store on fakeredis and
a real redis-server, every job's state read before and after each through the store's own
queries. (a) Every change seen is listed in TRANSITIONS; (b) every transition TRANSITIONS
lists is seen at least once, so the table holds nothing the code cannot do.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from contextlib import contextmanager

import tomli_w
from test_claims import HOST

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass
from scheduler.states import TRANSITIONS, JobState, Outcome
from scheduler.store.actions import apply_action, drain
from scheduler.store.claims import Claims
from scheduler.store.rq_bridge import absorb_rq_requeues

LISTED = {(src, dst) for src, dsts in TRANSITIONS.items() for dst in dsts}


class StateLog:
    """Runs store operations, each inside :meth:`op`, and keeps every job state change they made."""

    def __init__(self, store):
        self.store = store
        self.seen: dict[tuple[JobState, JobState], set[str]] = defaultdict(set)  # transition -> operations
        self.ops: set[str] = set()

    def states(self) -> dict[str, JobState]:
        ids = self.store.jobs.list_ids(limit=10**6)
        return {r.job_id: r.state for r in self.store.jobs.many(ids)}

    @contextmanager
    def op(self, name: str):
        before = self.states()
        yield
        after = self.states()
        self.ops.add(name)
        assert set(before) <= set(after), f"{name} deleted jobs {set(before) - set(after)}"
        for job_id, new in after.items():
            if job_id not in before:  # made by a load: pending, or blocked behind a parent that will not finish
                assert name.startswith("load") and new in (JobState.PENDING, JobState.BLOCKED), (name, new)
            elif before[job_id] is not new:
                assert (before[job_id], new) in LISTED, (
                    f"{name} moved {self.store.jobs.get(job_id).name} {before[job_id]} -> {new}, "
                    f"which TRANSITIONS does not list")
                self.seen[(before[job_id], new)].add(name)


def manifest_of(jobs: list[dict]):
    return parse_manifest(tomli_w.dumps({"schema_version": 1, "jobs": jobs}), "m.toml")


def spec(name: str, i: int, **fields) -> dict:
    """A job whose RAM need (a quarter GiB per i) is its own class, so a claim can name it alone;
    retried at once (tests/test_retries.py has the delay)."""
    return {"name": name, "model": "m", "seed": i, "min_ram_gib": 0.25 * (i + 1), "max_attempts": 2,
            "retry_delay_s": 0, **fields}


class Fleet:
    """The scripted scenario's store, manifest and worker, with each operation logged."""

    def __init__(self, store, jobs: list[dict]):
        self.store, self.log = store, StateLog(store)
        self.claims = Claims(store.redis, store.keys, lease_s=2)
        self.load("load: add", jobs)

    def load(self, op: str, jobs: list[dict]) -> None:
        self.manifest = manifest_of(jobs)
        with self.log.op(op):
            self.store.load(self.manifest, allow_orphaning=True)

    def id(self, name: str) -> str:
        return self.store.jobs.resolve(name)

    def claim(self, name: str, now: float | None = None):
        cls = ConstraintClass.of(self.manifest.job_named(name), {})
        with self.log.op("claim"):
            c = self.claims.claim("w", HOST, [cls], now=now)
        assert c is not None and c.job_id == self.id(name), name
        return c

    def end(self, name: str, outcome: Outcome, expect: JobState) -> None:
        c = self.claim(name)
        with self.log.op(f"finish {outcome.value}"):
            ended = self.claims.complete(c.job_id, c.attempt, "w", outcome, exit_code=0 if outcome is Outcome.FINISHED
                                         else 1)
        assert ended.state is expect, (name, outcome, ended)

    def apply_action(self, action: str, *names: str, **kw) -> None:
        with self.log.op(action):
            results = apply_action(self.store.redis, self.store.keys, action, [self.id(n) for n in names], **kw)
        assert all(r.ok for r in results), results

    def state(self, name: str) -> JobState:
        return self.store.jobs.get(self.id(name)).state


def test_every_operation_makes_only_listed_transitions_and_every_listed_one_happens(store):
    jobs = [spec("parent", 0, max_attempts=1), spec("child", 1, after=["parent"]),
            spec("grandchild", 2, after=["child"]), spec("held-child", 3, after=["parent"]),
            spec("a", 4), spec("b", 5), spec("x", 6), spec("y", 7), spec("z", 8)]
    fleet = Fleet(store, jobs)
    edited = [j for j in jobs if j["name"] != "z"]
    edited[4] = {**edited[4], "priority": 7}  # a: a scheduling change, updated in place
    edited[7] = {**edited[7], "seed": 70}  # y: an identity change, a new job; the old one orphaned
    fleet.load("load: drop, edit", edited)
    fleet.load("load: re-add", jobs)

    fleet.apply_action("hold", "held-child", "x", "b")  # pending -> held, a waiting child too
    fleet.apply_action("release", "x")  # held -> pending
    fleet.apply_action("cancel", "b")  # held -> canceled
    fleet.end("parent", Outcome.FAILED, JobState.FAILED)  # max_attempts 1: failed for good
    assert [fleet.state(n) for n in ("child", "grandchild", "held-child")] == [JobState.BLOCKED] * 3
    fleet.apply_action("cancel", "held-child")  # blocked -> canceled
    fleet.apply_action("retry", "parent")  # failed -> pending; its blocked descendants -> pending
    assert [fleet.state(n) for n in ("child", "grandchild")] == [JobState.PENDING] * 2
    fleet.end("parent", Outcome.FINISHED, JobState.FINISHED)

    c = fleet.claim("child")
    fleet.apply_action("cancel", "child")  # running: its worker is asked; no state change yet
    assert fleet.state("child") is JobState.RUNNING
    with fleet.log.op("finish failed"):  # the operator's cancel outranks the retry a failure earns
        assert fleet.claims.complete(c.job_id, c.attempt, "w", Outcome.FAILED, exit_code=1).state is JobState.CANCELED
    assert fleet.state("grandchild") is JobState.BLOCKED
    fleet.apply_action("retry", "child")  # canceled -> pending, and the grandchild with it

    fleet.end("a", Outcome.TIMEOUT, JobState.PENDING)  # an attempt left
    fleet.end("a", Outcome.CRASHED, JobState.FAILED)
    fleet.apply_action("retry", "a", reset=True)
    fleet.end("a", Outcome.INTERRUPTED, JobState.PENDING)  # not counted
    fleet.end("a", Outcome.CANCELED, JobState.CANCELED)

    now = time.time()
    fleet.claim("x", now=now)  # its worker dies: the lease runs out and the reaper takes it back
    for tick in range(4):
        with fleet.log.op("reap"):
            fleet.claims.reap(now=now + tick, every_s=1)
    assert fleet.state("x") is JobState.PENDING
    fleet.end("x", Outcome.LOST, JobState.FAILED)  # the second lost attempt of two
    store.redis.hset(store.keys.worker("w"), "heartbeat", time.time())  # as a worker registers
    with fleet.log.op("drain"):
        assert drain(store.redis, store.keys, "w")
    with fleet.log.op("rq requeue"):
        store.redis.rpush("rq:queue:fleet-test", fleet.id("x"))
        assert absorb_rq_requeues(store.redis, store.keys, "rq:queue:fleet-test") == 1
    fleet.apply_action("cancel", "y")  # pending -> canceled
    fleet.end("z", Outcome.FINISHED, JobState.FINISHED)
    fleet.apply_action("rerun", "z")  # finished -> pending: `fleet rerun`, never a reload

    assert set(fleet.log.seen) == LISTED, f"listed in TRANSITIONS but never made: {LISTED - set(fleet.log.seen)}"
    assert fleet.log.ops >= {"load: add", "load: drop, edit", "load: re-add", "claim", "reap", "drain",
                             "rq requeue", "cancel", "hold", "release", "retry", "rerun",
                             *(f"finish {o.value}" for o in Outcome)}


# -- a random walk over the same operations: (a) wherever it goes ---------------------------------

WALK_JOBS = [spec("p1", 0), spec("c1", 1, after=["p1"]), spec("g1", 2, after=["c1"]), spec("p2", 3),
             spec("c2", 4, after=["p2"]), spec("m", 5, after=["p1", "p2"]), spec("i1", 6), spec("i2", 7),
             spec("i3", 8)]
LEAVES = {"g1", "c2", "m", "i1", "i2", "i3"}  # no job lists them in `after`: a load may drop them


def test_a_random_walk_over_every_operation_makes_only_listed_transitions(store):
    rng = random.Random(16)
    log = StateLog(store)
    claims = Claims(store.redis, store.keys, lease_s=1.5)  # two reaper ticks
    listed = {j["name"] for j in WALK_JOBS}
    now, running = time.time(), []

    def load():
        jobs = [{**j, "priority": rng.randint(-1, 1)} for j in WALK_JOBS if j["name"] in listed]
        manifest = manifest_of(jobs)
        with log.op("load"):
            store.load(manifest, allow_orphaning=True)
        return [ConstraintClass.of(j, {}) for j in manifest.jobs]

    classes = load()
    for _ in range(400):
        ids = store.jobs.list_ids(limit=100)
        roll = rng.random()
        if roll < 0.3:
            worker = rng.choice(["w1", "w2"])
            with log.op("claim"):
                c = claims.claim(worker, HOST, classes, now=now)
            if c:
                running.append((c, worker))
        elif roll < 0.5 and running:  # a reaped attempt's late report is fenced off: no change
            c, worker = running.pop(rng.randrange(len(running)))
            outcome = rng.choice(list(Outcome))
            with log.op(f"finish {outcome.value}"):
                claims.complete(c.job_id, c.attempt, worker, outcome, exit_code=int(outcome is not Outcome.FINISHED))
        elif roll < 0.75:
            action = rng.choice(["cancel", "retry", "rerun", "hold", "release"])
            with log.op(action):
                apply_action(store.redis, store.keys, action, rng.sample(ids, rng.randint(1, 3)),
                             reset=rng.random() < 0.5, all_or_nothing=rng.random() < 0.5)
        elif roll < 0.9:
            now += 1
            with log.op("reap"):
                claims.reap(now=now, every_s=1)
        else:
            leaf = rng.choice(sorted(LEAVES))
            listed ^= {leaf}  # drop it, or list it again
            classes = load()
    assert len(log.seen) >= 12, dict(log.seen)  # the walk went most places, not a few
