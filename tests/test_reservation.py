"""Wide jobs are not starved: a host holds GPUs for the best job it cannot start yet, and
backfills only jobs that end (timeout_s) before that job could start.

On fakeredis and a real redis-server, through claim.lua; the last test holds the script
to the pure rule (scheduler.reservation.choose) on random hosts, running jobs and queues.
"""

from __future__ import annotations

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass, ledger_free
from scheduler.reservation import choose, gpu_ends_of, hold_words, ledger_held, ledger_holders, plan_hold
from scheduler.resources import GpuInfo, HostResources
from scheduler.queue_order import priority_level
from scheduler.states import Outcome
from scheduler.store.claims import Claims

NOW = 1_800_000_000.0


def box(gpus: int, cores: int = 32, ram: float = 256.0) -> HostResources:
    return HostResources("box", cores, ram, ram, tuple(GpuInfo(i, "NVIDIA H100 80GB HBM3", 80.0, 80.0, uuid=f"GPU-{i}",
                                                               compute_capability="9.0") for i in range(gpus)))


def load(store, jobs: list[dict]) -> dict[str, ConstraintClass]:
    """Load ``jobs`` (names and needs); returns each job name's class."""
    text = tomli_w.dumps({"schema_version": 1, "defaults": {"min_cores": 0},
                          "jobs": [{"model": "m", "seed": i, **j} for i, j in enumerate(jobs)]})
    manifest = parse_manifest(text, "m.toml")
    store.load(manifest)
    return {j.name: ConstraintClass.of(j, {}) for j in manifest.jobs}


def claim(store, host, classes: list[ConstraintClass], now: float = NOW):
    found = Claims(store.redis, store.keys).claim("w", host, classes, now=now)
    return (store.jobs.get(found.job_id).name, found) if found else (None, None)


def finish(store, found) -> None:
    Claims(store.redis, store.keys).complete(found.job_id, found.attempt, "w", Outcome.FINISHED, exit_code=0)


def test_a_wide_job_gets_its_gpus_while_small_jobs_keep_coming(store):
    """Two of four GPUs run small jobs without timeout_s; the 4-GPU job is next: no small job
    may take a freed GPU, so the wide one starts once both have ended."""
    host = box(4)
    cls = load(store, [{"name": f"small{i}", "require_cuda": True} for i in range(6)] +
               [{"name": "wide", "gpus": 4}])
    small, wide = cls["small0"], cls["wide"]
    running = [claim(store, host, [small])[1] for _ in range(2)]
    assert claim(store, host, [small, wide]) == (None, None), "a small job took a GPU the wide job waits for"
    finish(store, running[0])
    assert claim(store, host, [small, wide]) == (None, None)
    finish(store, running[1])
    name, found = claim(store, host, [small, wide])
    assert name == "wide" and len(found.gpu_keys) == 4


def test_a_hold_sticks_when_a_wider_job_arrives_later(store):
    """A 4-GPU job is held for; an 8-GPU job loaded after it ranks first (widest first) but
    waits its turn: the 4-GPU job gets the GPUs it was promised first."""
    host = box(8)
    first = [{"name": f"small{i}", "require_cuda": True} for i in range(5)] + [{"name": "four", "gpus": 4}]
    cls = load(store, first)
    running = [claim(store, host, [cls["small0"]])[1] for _ in range(5)]
    assert claim(store, host, [cls["small0"], cls["four"]]) == (None, None)  # holds for "four"
    cls.update(load(store, first + [{"name": "eight", "gpus": 8}]))
    finish(store, running[0])  # 4 free now: enough for "four", not for "eight"
    name, found = claim(store, host, [cls["small0"], cls["four"], cls["eight"]])
    assert name == "four" and len(found.gpu_keys) == 4


def test_a_higher_priority_job_comes_before_a_sticky_hold(store):
    """Operator priority still wins: while the host holds for a 4-GPU job, a 1-GPU job of a
    higher priority takes a GPU the hold had planned."""
    host = box(4)
    first = [{"name": f"small{i}", "require_cuda": True} for i in range(2)] + [{"name": "four", "gpus": 4}]
    cls = load(store, first)
    claim(store, host, [cls["small0"]])
    assert claim(store, host, [cls["small0"], cls["four"]]) == (None, None)  # holds for "four"
    cls.update(load(store, first + [{"name": "urgent", "require_cuda": True, "priority": 5, "min_ram_gib": 1}]))
    name, _ = claim(store, host, [cls["small0"], cls["four"], cls["urgent"]])
    assert name == "urgent"


def test_without_the_hold_the_small_jobs_would_have_taken_the_gpus(store):
    """The control: the same queue, the wide job not admitted, takes the free GPUs at once."""
    host = box(4)
    cls = load(store, [{"name": f"small{i}", "require_cuda": True} for i in range(6)] +
               [{"name": "wide", "gpus": 4}])
    for _ in range(2):
        claim(store, host, [cls["small0"]])
    assert claim(store, host, [cls["small0"]])[0] is not None


def test_backfill_only_what_ends_before_the_wide_job_could_start(store):
    """The running jobs end by NOW+100 at the latest (their timeout_s): a job of timeout_s 50
    started now ends before the wide job could start and may use a free GPU; one of 500 may not."""
    host = box(4)
    cls = load(store, [{"name": f"r{i}", "require_cuda": True, "timeout_s": 100} for i in range(2)] +
               [{"name": "wide", "gpus": 4},
                {"name": "long", "require_cuda": True, "timeout_s": 500},
                {"name": "short", "require_cuda": True, "timeout_s": 50}])
    for _ in range(2):
        claim(store, host, [cls["r0"]])
    assert claim(store, host, [cls["wide"], cls["long"]], now=NOW + 1) == (None, None)
    name, found = claim(store, host, [cls["wide"], cls["long"], cls["short"]], now=NOW + 1)
    assert name == "short" and len(found.gpu_keys) == 1


def test_jobs_beside_the_hold_still_start(store):
    """Four H100s (two busy) and two A100s; a job for four H100s waits: a CPU job that leaves it
    RAM and cores starts, a 1-GPU job of any kind starts on an A100, one that wants an H100 waits."""
    host = HostResources("box", 16, 128.0, 128.0, tuple(
        GpuInfo(i, "NVIDIA H100 80GB HBM3" if i < 4 else "NVIDIA A100-SXM4-40GB", 80.0 if i < 4 else 40.0,
                80.0 if i < 4 else 40.0, uuid=f"GPU-{i}") for i in range(6)))
    cls = load(store, [{"name": f"busy{i}", "require_cuda": True, "gpu_names": ["*H100*"]} for i in range(2)] +
               [{"name": "wide", "gpus": 4, "gpu_names": ["*H100*"], "min_ram_gib": 64, "min_cores": 8},
                {"name": "cpu", "min_ram_gib": 32, "min_cores": 4},
                {"name": "hog", "min_ram_gib": 100, "min_cores": 4},
                {"name": "h100", "require_cuda": True, "gpu_names": ["*H100*"], "min_vram_gib": 10},
                {"name": "any", "require_cuda": True}])
    for _ in range(2):
        claim(store, host, [cls["busy0"]])
    assert claim(store, host, [cls["wide"], cls["hog"]]) == (None, None), "RAM the wide job needs"
    assert claim(store, host, [cls["wide"], cls["cpu"]])[0] == "cpu"
    assert claim(store, host, [cls["wide"], cls["h100"]]) == (None, None), "an H100 the wide job waits for"
    name, found = claim(store, host, [cls["wide"], cls["h100"], cls["any"]])
    assert name == "any" and found.gpu_keys == ("GPU-4",)


def test_explain_words_say_how_many_gpus_are_held_for_whom():
    host = box(8)
    free = ledger_free(host, {"vram:GPU-0": 80.0, "vram:GPU-1": 80.0, "vram:GPU-2": 80.0})
    wide = ConstraintClass(False, False, 0.0, 0.0, 0, (), (), (), gpus=8)
    hold = plan_hold(wide, free, 256.0, 32, [[0.0]] * 3 + [[]] * 5, NOW)
    assert hold_words(hold, "wide-job", 8) == "holding 5 of 8 GPUs for wide-job"


@st.composite
def scenarios(draw):
    gpus = draw(st.integers(2, 8))
    running = draw(st.lists(st.tuples(st.integers(1, 3), st.sampled_from([0, 100, 1000])), max_size=4))
    pending = draw(st.lists(st.tuples(st.integers(0, gpus + 1), st.sampled_from([0, 50, 500, 5000]),
                                      st.sampled_from([0, 40, 200]), st.sampled_from([0, 0, 5])),
                            min_size=1, max_size=4))
    held = draw(st.one_of(st.none(), st.integers(0, len(pending) - 1)))  # a hold an earlier claim left
    return gpus, running, pending, held


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_the_claim_holds_and_backfills_as_the_pure_rule_says(store, scenario):
    gpus, running, pending, held = scenario
    store.redis.flushall()
    host = box(gpus, cores=16, ram=256.0)
    jobs = [{"name": f"run{i}", "gpus": n, "timeout_s": t, "priority": 10} for i, (n, t) in enumerate(running)]
    jobs += [{"name": f"p{i}", "gpus": n, "timeout_s": t, "min_ram_gib": ram, "priority": prio}
             for i, (n, t, ram, prio) in enumerate(pending)]
    cls = load(store, jobs)
    for i in range(len(running)):  # whatever of them fits, started in turn
        claim(store, host, [cls[f"run{i}"]])
    waiting = list({cls[f"p{i}"].class_id: cls[f"p{i}"] for i in range(len(pending))}.values())
    if held is not None:
        store.redis.hset(store.keys.ledger("box"), f"hold:{cls[f'p{held}'].class_id}", NOW)
    order = [(c.decode(), at) for c, at in store.redis.zrange(store.keys.heads, 0, -1, withscores=True)]
    by_id = {c.class_id: c for c in waiting}
    ordered = [(by_id[c], by_id[c].timeout_s, priority_level(at)) for c, at in order if c in by_id]
    ledger = {k.decode(): float(v) for k, v in store.redis.hgetall(store.keys.ledger("box")).items()}
    ends = gpu_ends_of([g.ledger_key for g in host.gpus], ledger_holders(ledger))
    now = NOW + 10
    want_cls, want_gpus, want_hold = choose(ordered, ledger_free(host, ledger), host.ram_total_gib, host.cores, ends,
                                            now, ledger_held(ledger))
    name, found = claim(store, host, waiting, now=now)
    after = {k.decode() for k in store.redis.hkeys(store.keys.ledger("box"))}
    assert {f for f in after if f.startswith("hold:")} == ({f"hold:{want_hold.class_id}"} if want_hold else set()), \
        (scenario, after)
    if want_cls is None:
        assert found is None, (scenario, name)
    else:
        assert found is not None and cls[name].class_id == want_cls.class_id, (scenario, name)
        assert found.gpu_positions == tuple(i + 1 for i in want_gpus), scenario


def test_a_finished_job_leaves_no_expected_end_behind(store):
    host = box(2)
    cls = load(store, [{"name": "a", "gpus": 2, "timeout_s": 60}])
    _, found = claim(store, host, [cls["a"]])
    ledger = store.keys.ledger("box")
    assert any(k.startswith(b"end:") for k in store.redis.hkeys(ledger))
    finish(store, found)
    assert store.redis.hgetall(ledger) == {}




def test_explain_says_what_a_host_holds_and_for_whom(store):
    """The small job that waits says the host holds GPUs for the wide one; the wide one says
    what it waits for: what the claims above decide, read through the store on both servers."""
    from scheduler.explain import explanation
    from scheduler.store.workers import WorkerInfo

    host = box(8)
    cls = load(store, [{"name": f"small{i}", "require_cuda": True} for i in range(5)] +
               [{"name": "wide-job", "gpus": 8}, {"name": "wide-too", "gpus": 8}])
    for _ in range(3):
        claim(store, host, [cls["small0"]])
    workers = [WorkerInfo("w", host, "busy", False, None, NOW, 30.0)]

    def explained(name: str):
        record = store.jobs.get(store.jobs.resolve(name))
        return explanation(store.explain_view(record, workers=workers, now=NOW + 5))
    small = explained("small3")
    assert small.per_worker == [("w@box", "holding 5 of 8 GPUs for wide-job; this job starts there only if its "
                                          "timeout_s ends before that job could start")], small.per_worker
    assert small.runnable_by == []
    wide = explained("wide-job")
    assert wide.per_worker[0][1].startswith("busy: gpus 8 > 5 GPUs free"), wide.per_worker
    assert "the host holds for it: 5 of its 8 GPUs kept idle (of 8), the other 3 free as soon as their jobs end" \
        in wide.per_worker[0][1], wide.per_worker
    behind = explained("wide-too")  # the same class, behind wide-job: the hold is not for it
    assert "the host holds for the first of the 1 job(s) of its constraints ahead of it" in behind.per_worker[0][1]
