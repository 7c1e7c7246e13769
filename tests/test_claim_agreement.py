"""claim.lua and scheduler.matching decide alike: whether a job fits, which GPU it gets, what it reserves.

The claim script re-states the resource rule in Lua (it must decide atomically, in Redis);
this holds the two to one answer, on fakeredis and a real redis-server, with the float
sizes real cards and jobs have (23.5, 39.99, RAM fractions) and the dust the ledger's
float sums leave. The Python side of each check is the pure rule on the very ledger the
script reads: ``resources_reason`` for whether, ``best_fit_gpu`` for which card.
"""

from __future__ import annotations

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass, Free, best_fit_gpu, ledger_free, resources_reason
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import JobState
from scheduler.store.claims import Claims


def rule_pick(cls: ConstraintClass, free: Free) -> int | None:
    """The 0-based GPU the pure rule gives a job that fits: the best fit wherever the job uses a
    GPU (require_cuda, or VRAM asked on a CUDA host, as resources_reason binds it), else none."""
    if cls.require_cuda or (cls.min_vram_gib > 0 and free.gpu_vram_gib):
        return best_fit_gpu(cls.min_vram_gib, free.gpu_vram_gib)
    return None


def read_ledger(store, host: HostResources) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in store.redis.hgetall(store.keys.ledger(host.hostname)).items()}


def claim_each_and_compare(store, host: HostResources, ledger: dict[str, float], need: dict, jobs: int) -> int:
    """Load ``jobs`` alike jobs needing ``need`` onto a host whose ledger holds ``ledger``, claim
    until the script says nothing fits or none is left, and check every claim against the pure
    rule on the ledger as it stood. Returns how many were claimed."""
    store.redis.flushall()
    if ledger:
        store.redis.hset(store.keys.ledger(host.hostname), mapping=ledger)
    text = tomli_w.dumps({"schema_version": 1,
                          "jobs": [{"name": f"j{i}", "model": "m", "seed": i, **need} for i in range(jobs)]})
    manifest = parse_manifest(text, "m.toml")
    store.load(manifest)
    (cls,) = {ConstraintClass.of(j, {}) for j in manifest.jobs}
    claims = Claims(store.redis, store.keys)
    for claimed in range(jobs):
        before = read_ledger(store, host)
        free = ledger_free(host, before)
        python_says = resources_reason(cls, free) is None
        claim = claims.claim("w", host, [cls])
        lua_says = claim is not None
        assert python_says == lua_says, (claimed, need, before, free)
        if not lua_says:
            assert read_ledger(store, host) == before  # a refused claim reserves nothing
            return claimed
        pick = rule_pick(cls, free)
        assert claim.gpu_pos == (0 if pick is None else pick + 1), (need, free)
        assert claim.gpu_key == ("" if pick is None else host.gpus[pick].ledger_key)
        assert store.jobs.get(claim.job_id).state is JobState.RUNNING
        expected = dict(before)
        for field, amount in (("ram", cls.min_ram_gib), ("cores", cls.min_cores),
                              (f"vram:{claim.gpu_key}", cls.min_vram_gib if claim.gpu_key else 0)):
            if amount > 0:
                expected[field] = expected.get(field, 0.0) + amount
        after = read_ledger(store, host)
        assert after == pytest.approx(expected, abs=1e-9), (need, before)
    return jobs


def gpu_host(*cards: tuple[float, float], ram: float = 64.0, cores: int = 8) -> HostResources:
    """``cards``: (total, free as probed) per GPU, in the worker's CUDA order."""
    return HostResources("box", cores, ram, ram, tuple(GpuInfo(i, f"g{i}", total, free, uuid=f"GPU-{i}")
                                                       for i, (total, free) in enumerate(cards)))


@pytest.mark.parametrize("host, ledger, need, jobs, claimed", [
    # the 39.99 GiB card, not the first that fits (40) nor the biggest; then 40, 80, and the 40.01 left on 80
    (gpu_host((40.0, 40.0), (39.99, 39.99), (80.0, 80.0)), {}, {"require_cuda": True, "min_vram_gib": 39.99}, 5, 4),
    # 23.5 exactly on a 23.5 card; then the 24 GiB one; then none
    (gpu_host((24.0, 24.0), (23.5, 23.5)), {}, {"require_cuda": True, "min_vram_gib": 23.5}, 3, 2),
    # three 7.9 GiB jobs on a 24 GiB card leave float dust just under 0.3 GiB: a 0.3 GiB job still fits
    (gpu_host((24.0, 24.0)), {"vram:GPU-0": 7.9 + 7.9 + 7.9}, {"require_cuda": True, "min_vram_gib": 0.3}, 2, 1),
    # the probe sees less free than the ledger leaves (memory used outside fleet): the probe binds
    (gpu_host((48.0, 20.5), (24.0, 24.0)), {"vram:GPU-0": 8.01}, {"min_vram_gib": 20.5, "min_cores": 0}, 3, 2),
    # RAM fractions: four of 7.6875 fill the 30.75 GiB left exactly; no GPU for a job asking no VRAM
    (gpu_host((24.0, 24.0), ram=31.25), {"ram": 0.5}, {"min_ram_gib": 7.6875, "min_cores": 0}, 5, 4),
    # require_cuda with no VRAM asked: the smallest card, reserving no VRAM
    (gpu_host((80.0, 80.0), (16.0, 16.0)), {}, {"require_cuda": True, "min_vram_gib": 0, "min_cores": 3}, 3, 2),
])
def test_claims_take_the_gpu_and_reserve_what_the_rule_says(store, host, ledger, need, jobs, claimed):
    assert claim_each_and_compare(store, host, ledger, need, jobs) == claimed


SIZES = [0.0, 0.25, 0.3, 7.5, 7.9, 8.0, 8.01, 10.5, 16.0, 23.5, 24.0, 39.99, 40.0, 47.5, 48.0, 80.0]


def sizes(low: float, high: float):
    """GiB values: the sizes cards and jobs really have, or any float rounded to 1/100."""
    return st.one_of(st.sampled_from([s for s in SIZES if low <= s <= high]),
                     st.floats(low, high).map(lambda x: round(x, 2)))


@st.composite
def fleets(draw):
    """A host (its GPUs as probed), its ledger, and a job's needs; needs often sit exactly on
    what the ledger leaves, which is where the two rules could part."""
    cards, ledger, room = [], {}, []
    for i in range(draw(st.sampled_from([0, 1, 2, 3, 3]))):
        total = draw(sizes(1, 80))
        probed = draw(st.one_of(st.just(total), sizes(0, total)))
        dust = [7.9 + 7.9 + 7.9] if total >= 24 else []  # three 7.9 GiB jobs, as the ledger sums them
        reserved = draw(st.one_of(st.sampled_from([0.0, *dust]), sizes(0, total)))
        cards.append((total, probed))
        if reserved:
            ledger[f"vram:GPU-{i}"] = reserved
        room.append(min(probed, total - reserved))
    ram, cores = draw(st.sampled_from([16.0, 31.25, 64.0])), draw(st.integers(1, 16))
    ledger["ram"] = draw(st.one_of(st.just(0.0), sizes(0, ram), st.just(0.1 + 0.2)))
    ledger["cores"] = float(draw(st.integers(0, cores)))
    # Each need: exactly what is left, a part of it (twice as likely, so claims happen and GPUs
    # are chosen), or any size at all.
    vram_room = draw(st.sampled_from(room)) if room else 0.0
    ram_room, cores_room = ram - ledger["ram"], cores - int(ledger["cores"])
    part = st.floats(0, 1).map(lambda x: round(x, 2))
    need = {"require_cuda": draw(st.booleans()),
            "min_vram_gib": draw(st.one_of(st.just(vram_room), part.map(lambda x: round(vram_room * x, 2)),
                                           part.map(lambda x: round(vram_room * x, 2)), sizes(0, 90))),
            "min_ram_gib": draw(st.one_of(st.just(ram_room), part.map(lambda x: round(ram_room * x, 2)),
                                          part.map(lambda x: round(ram_room * x, 2)), sizes(0, 70))),
            "min_cores": draw(st.one_of(st.just(cores_room), st.integers(0, max(0, cores_room)),
                                        st.integers(0, max(0, cores_room)), st.integers(0, 16)))}
    return gpu_host(*cards, ram=ram, cores=cores), {k: v for k, v in ledger.items() if v}, need


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fleet=fleets(), jobs=st.integers(1, 4))
def test_lua_claim_agrees_with_the_pure_rule(store, fleet, jobs):
    """claim.lua's resource check and scheduler.matching.resources_reason decide alike, and the
    script takes the GPU best_fit_gpu names and reserves exactly the job's needs there."""
    host, ledger, need = fleet
    assume(not (need["require_cuda"] and not host.gpus))  # the static rule's, never offered to the script
    claim_each_and_compare(store, host, ledger, need, jobs)
