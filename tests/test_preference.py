"""Soft preferences: who gets first pick, and that a preference can only delay, never starve."""

from __future__ import annotations

import json
import time

import tomli_w

from scheduler.keys import Keys
from scheduler.manifest import parse_manifest
from scheduler.manifest.model import HostSpec
from scheduler.matching import ConstraintClass
from scheduler.resources import GpuInfo, HostResources
from scheduler.store.board import IDLE_FRESH_S, BoardAnswer, PreferenceBoard
from scheduler.store.workers import queue_publish
from worker.claim import Claimer
from worker.preference import DEFAULT_SETTLE_S, Deferrals, better_placed, placement_rank


def host(name: str, gpus=(), cores: int = 16, ram: float = 64) -> HostResources:
    return HostResources(name, cores, ram, ram, tuple(GpuInfo(i, f"g{v}", v, v, uuid=f"{name}-{i}")
                                                      for i, v in enumerate(gpus)))


def cls(**kw) -> ConstraintClass:
    base = dict(require_cuda=False, prefer_cuda=False, min_vram_gib=0.0, min_ram_gib=0.0, min_cores=1,
                allowed_hosts=(), denied_hosts=(), rejected_by=())
    base.update(kw)
    return ConstraintClass(**base)


HOSTS = {"big": HostSpec("big", priority=10), "small": HostSpec("small", priority=0)}


def test_higher_priority_host_gets_first_pick():
    assert better_placed(cls(), me=host("small"), other=host("big"), hosts=HOSTS)
    assert not better_placed(cls(), me=host("big"), other=host("small"), hosts=HOSTS)


def test_small_gpu_job_prefers_the_smallest_card_that_fits():
    c = cls(require_cuda=True, min_vram_gib=10)
    a100, rtx = host("a100", [80]), host("rtx", [24])
    assert better_placed(c, me=a100, other=rtx, hosts={})
    assert not better_placed(c, me=rtx, other=a100, hosts={})
    # A job the small card cannot hold is no reason for the big card to step aside.
    assert not better_placed(cls(require_cuda=True, min_vram_gib=40), me=a100, other=rtx, hosts={})


def test_gpu_fit_outranks_host_priority_and_cpu_jobs_prefer_cpu_hosts():
    hosts = {"a100": HostSpec("a100", priority=10), "rtx": HostSpec("rtx", priority=0),
             "cpu": HostSpec("cpu", priority=0)}
    small_gpu = cls(require_cuda=True, min_vram_gib=10)
    assert better_placed(small_gpu, me=host("a100", [80]), other=host("rtx", [24]), hosts=hosts)
    assert better_placed(cls(), me=host("a100", [80]), other=host("cpu"), hosts=hosts)
    assert not better_placed(cls(), me=host("cpu"), other=host("a100", [80]), hosts=hosts)


def test_prefer_cuda_goes_to_an_idle_cuda_worker():
    c = cls(prefer_cuda=True)
    assert better_placed(c, me=host("cpu"), other=host("gpu", [24]), hosts={})
    assert not better_placed(cls(), me=host("cpu"), other=host("gpu", [24]), hosts={})


def test_a_host_that_refuses_the_job_is_never_better_placed():
    c = cls(denied_hosts=("big",))
    assert not better_placed(c, me=host("small"), other=host("big"), hosts=HOSTS)


def test_deferral_only_delays_by_the_grace_period():
    d = Deferrals(grace_s=0.5)
    c = cls()
    keep, due = d.filter([c], {c.class_id}, now=100.0)
    assert keep == [] and abs(due - 0.5) < 1e-9
    keep, _ = d.filter([c], {c.class_id}, now=100.3)
    assert keep == []
    keep, due = d.filter([c], {c.class_id}, now=100.5)
    assert keep == [c] and due is None
    # Once no better-placed worker is idle, nothing is deferred.
    assert d.filter([c], set(), now=200.0) == ([c], None)


def test_a_class_just_seen_waits_for_the_other_idle_workers_offers_but_not_alone():
    """The board can only name a better-placed worker that has offered for a class; one that
    woke on the same load may not have yet. So a new class settles a moment while others are
    idle, and within the grace, counted from when it was first seen, whatever the board says."""
    d, c = Deferrals(grace_s=0.5, settle_s=0.2), cls()
    keep, due = d.filter([c], set(), others_idle=3, now=100.0)
    assert keep == [] and abs(due - 0.2) < 1e-9
    assert d.filter([c], set(), others_idle=3, now=100.2) == ([c], None)  # settled, nobody better
    two = cls(min_cores=2)
    keep, due = d.filter([two], {two.class_id}, others_idle=3, now=100.3)
    assert keep == [] and abs(due - 0.2) < 1e-9  # another new class: settles, then the grace
    keep, due = d.filter([two], {two.class_id}, others_idle=3, now=100.5)
    assert keep == [] and abs(due - 0.3) < 1e-9
    assert d.filter([two], {two.class_id}, others_idle=3, now=100.8)[0] == [two]
    alone = Deferrals(grace_s=0.5, settle_s=0.2)
    assert alone.filter([c], set(), others_idle=0, now=100.0) == ([c], None)  # nobody to wait for


def test_of_two_idle_workers_woken_by_one_load_the_better_placed_gets_the_job(store):
    """The CI flake behind this: a load woke two idle workers and the worse-placed one asked the
    board first, before the better one had offered for the new class, and took the job."""
    hosts = {"fast": {"priority": 10}, "slow": {"priority": 0}}
    manifest = {"schema_version": 1, "hosts": hosts,
                "jobs": [{"name": "warmup", "model": "m", "allowed_hosts": ["nowhere"]}]}
    store.load(parse_manifest(tomli_w.dumps(manifest), "m.toml"))
    fast = Claimer(store, store.claims(), "fast", lambda: host("fast"))
    slow = Claimer(store, store.claims(), "slow", lambda: host("slow"))
    for name, claimer in (("fast", fast), ("slow", slow)):
        say_idle(store.redis, name, time.time())
        assert claimer.try_claim() is None
    manifest["jobs"].append({"name": "cpu-job", "model": "m", "seed": 1, "allowed_hosts": ["fast", "slow"]})
    store.load(parse_manifest(tomli_w.dumps(manifest), "m.toml"))
    assert slow.try_claim() is None and slow.next_due is not None  # slow saw it first: it settles
    claim = fast.try_claim()
    assert claim is None and fast.next_due is not None  # so does fast, having seen it first just now
    time.sleep(DEFAULT_SETTLE_S)
    assert slow.try_claim() is None  # fast has offered now, and ranks above it
    claim = fast.try_claim()
    assert claim is not None and claim.job_id == store.jobs.resolve("cpu-job")


def test_the_rank_orders_hosts_as_the_rule_does():
    """placement_rank is what the board compares: for every pair of hosts and class here it
    says 'better' exactly when better_placed does, and None for a host that cannot run it."""
    hosts = [host("cpu"), host("small", [24]), host("big", [80]), host("two", [24, 80]), host("a100", [80])]
    classes = [cls(), cls(prefer_cuda=True), cls(require_cuda=True, min_vram_gib=40), cls(min_cores=32),
               cls(denied_hosts=("big",)), cls(require_cuda=True)]
    for c in classes:
        for me in hosts:
            for other in hosts:
                mine, theirs = placement_rank(c, me, HOSTS), placement_rank(c, other, HOSTS)
                assert better_placed(c, me, other, HOSTS) == (theirs is not None and (mine is None or theirs > mine))
    assert placement_rank(cls(min_cores=32), host("cpu"), HOSTS) is None
    assert placement_rank(cls(require_cuda=True), host("cpu"), HOSTS) is None
    # priority decides only between equally placed hosts
    assert placement_rank(cls(), host("big"), HOSTS) > placement_rank(cls(), host("small"), HOSTS)
    assert placement_rank(cls(), host("cpu"), HOSTS) > placement_rank(cls(), host("big", [80]), HOSTS)


def board_of(redis, name: str) -> PreferenceBoard:
    return PreferenceBoard(redis, Keys("fleet"), name)


def say_idle(redis, name: str, at: float) -> None:
    redis.zadd(Keys("fleet").idle, {name: at})


def test_the_board_names_a_class_only_while_a_better_placed_worker_is_idle(any_redis):
    r, keys, now = any_redis, Keys("fleet"), 1000.0
    big, small = board_of(r, "w-big"), board_of(r, "w-small")
    say_idle(r, "w-big", now)
    assert big.ask({"c1": 200.0, "c2": 50.0}, now=now) == BoardAnswer(frozenset(), 0)  # nobody above it
    say_idle(r, "w-small", now)
    # w-big ranks above it for c1 only, and is the one other idle worker
    assert small.ask({"c1": 100.0, "c2": 100.0}, now=now) == BoardAnswer(frozenset({"c1"}), 1)
    assert big.ask({"c1": 200.0, "c2": 50.0}, now=now).better_elsewhere == {"c2"}
    r.zrem(keys.idle, "w-big")  # w-big took a job (queue_publish(idle=False))
    assert small.ask({"c1": 100.0, "c2": 100.0}, now=now + 1) == BoardAnswer(frozenset(), 0)
    # a worker that stopped saying idle long ago is dropped from the boards on the way
    assert r.zscore(keys.prefer("c1"), "w-big") is None
    say_idle(r, "w-big", now + 2)
    assert big.ask({"c1": 200.0}, reoffer=True, now=now + 2).better_elsewhere == set()  # back: it offers again
    assert small.ask({"c1": 100.0}, now=now + 2).better_elsewhere == {"c1"}
    # quiet for longer than IDLE_FRESH_S: no longer counts as idle, and cannot hold anyone back
    assert small.ask({"c1": 100.0}, now=now + 2 + IDLE_FRESH_S + 0.5) == BoardAnswer(frozenset(), 0)


def test_an_idle_workers_claim_costs_the_same_whatever_the_number_of_workers(real_store, real_redis):
    """Issue 18: one idle claim attempt used to read every worker record seen in a day. Now
    its commands are the same with 1 worker as with 1,000 stale records and 200 idle rivals."""
    store = real_store
    store.load(parse_manifest(tomli_w.dumps({"schema_version": 1, "jobs": [
        {"name": f"j{i}", "model": "m", "seed": i, "min_ram_gib": 1 + i % 5} for i in range(20)]}), "m.toml"))
    jobs = [j.decode() for j in real_redis.zrange(store.keys.jobs, 0, -1)]
    store.apply_action("hold", jobs)  # classes to consider, none to claim
    me = host("small")
    claimer = Claimer(store, store.claims(), "w-me", lambda: me)

    def commands_of_one_attempt() -> int:
        claimer.try_claim()  # warm: offers written, scripts loaded
        time.sleep(0.3)  # past any caching of what it read
        before = real_redis.info("stats")["total_commands_processed"]
        claimer._last_reap = time.monotonic()  # the reaper's once-a-second tick is not the claim
        assert claimer.try_claim() is None
        return real_redis.info("stats")["total_commands_processed"] - before - 1  # less the INFO

    alone = commands_of_one_attempt()
    now = time.time()
    pipe = real_redis.pipeline(transaction=False)
    for i in range(1000):
        queue_publish(pipe, store.keys, f"gone{i}", {"resources": json.dumps(host(f"g{i}").to_dict()),
                                                      "state": "stopped"}, now - 3600)
    pipe.execute()
    for i in range(200):
        rival = Claimer(store, store.claims(), f"rival{i}", lambda i=i: host(f"r{i}", cores=8))
        say_idle(real_redis, f"rival{i}", now)
        rival.try_claim()
    assert commands_of_one_attempt() == alone


