"""claim.lua and scheduler.matching decide alike: whether a job fits, which GPUs it gets, what it reserves.

The claim script re-states the resource rule in Lua (it must decide atomically, in Redis);
this holds the two to one answer, on fakeredis and a real redis-server, with the float
sizes real cards and jobs have (23.5, 39.99, RAM fractions) and the dust the ledger's
float sums leave. The Python side of each check is the pure rule on the very ledger the
script reads: ``resources_reason`` for whether, ``choose_gpus`` for which cards (and, for
one GPU shared, ``best_fit_gpu``, which it must agree with).
"""

from __future__ import annotations

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler.manifest import parse_manifest
from scheduler.matching import (ConstraintClass, Free, best_fit_gpu, choose_gpus, gpu_count, ledger_free,
                                resources_reason, static_reason)
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import JobState
from scheduler.store.claims import Claims


def rule_pick(cls: ConstraintClass, free: Free) -> tuple[int, ...]:
    """The 0-based GPUs the pure rule gives a job that fits; for one shared GPU, also the card
    best_fit_gpu names (the single-GPU rule the claim had before multi-GPU jobs)."""
    picks = choose_gpus(cls, free)
    assert picks is not None
    if len(picks) == 1 and not cls.whole_gpus and not cls.gpu_names and not cls.min_compute_capability:
        assert picks == (best_fit_gpu(cls.min_vram_gib, free.gpu_vram_gib),)
    return picks


def read_ledger(store, host: HostResources) -> dict[str, float]:
    """The host's reservations; its hold: field (which class it holds for) is no reservation and
    tests/test_reservation.py checks it."""
    return {k.decode(): float(v) for k, v in store.redis.hgetall(store.keys.ledger(host.hostname)).items()
            if not k.startswith(b"hold:")}


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
        picks = rule_pick(cls, free)
        assert len(picks) == gpu_count(cls, bool(host.gpus))
        assert claim.gpu_positions == tuple(i + 1 for i in picks), (need, free)
        assert claim.gpu_keys == tuple(host.gpus[i].ledger_key for i in picks)
        assert store.jobs.get(claim.job_id).state is JobState.RUNNING
        expected = dict(before)
        reservations = [("ram", cls.min_ram_gib), ("cores", cls.min_cores)]
        for i in picks:  # min_vram_gib on each GPU shared; a GPU held whole, all of it
            reservations.append((f"vram:{host.gpus[i].ledger_key}",
                                 cls.min_vram_gib if cls.min_vram_gib > 0 else host.gpus[i].vram_total_gib))
        for field, amount in reservations:
            if amount > 0:
                expected[field] = expected.get(field, 0.0) + amount
        if picks:  # when its GPUs free at the latest (0: no timeout_s), for a hold's plan
            expected[f"end:{claim.job_id}:{','.join(claim.gpu_keys)}"] = 0.0
        after = read_ledger(store, host)
        assert after == pytest.approx(expected, abs=1e-9), (need, before)
    return jobs


KINDS = [("NVIDIA A100-SXM4-40GB", "8.0"), ("Tesla V100-SXM2-16GB", "7.0"), ("NVIDIA H100 80GB HBM3", "9.0")]


def gpu_host(*cards: tuple[float, float], ram: float = 64.0, cores: int = 8,
             islands: tuple[tuple[int, ...], ...] = (), switches: tuple[tuple[int, ...], ...] = ()) -> HostResources:
    """``cards``: (total, free as probed) per GPU, in the worker's CUDA order; their kinds cycle
    through KINDS. ``islands``: groups of GPU indices joined by NVLink; ``switches``: by a PCIe
    switch (the rest: across the host bridge)."""
    links = tuple((a, b, kind) for groups, kind in ((islands, "nvlink"), (switches, "pcie-switch"))
                  for group in groups for a in group for b in group if a < b)
    return HostResources("box", cores, ram, ram, tuple(
        GpuInfo(i, KINDS[i % len(KINDS)][0], total, free, uuid=f"GPU-{i}", compute_capability=KINDS[i % len(KINDS)][1])
        for i, (total, free) in enumerate(cards)), links=links)


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
    # require_cuda with no VRAM asked: held whole, the smallest card first, then the other; then none
    (gpu_host((80.0, 80.0), (16.0, 16.0)), {}, {"require_cuda": True, "min_vram_gib": 0, "min_cores": 0}, 3, 2),
    # whole: a card a sharing job already reserved on is not free
    (gpu_host((80.0, 80.0), (16.0, 16.0)), {"vram:GPU-1": 4.0}, {"require_cuda": True, "min_cores": 0}, 3, 1),
    # two GPUs of four, 20 GiB on each: the two with the least room that fit (30 and 40), then the
    # 20 left on the 40 with the 80; then only the 80 has room, and one GPU is not two
    (gpu_host((40.0, 40.0), (16.0, 16.0), (80.0, 80.0), (40.0, 30.0)), {},
     {"gpus": 2, "min_vram_gib": 20.0, "min_cores": 0}, 4, 2),
    # four whole GPUs on a box of four, one of them in use by a sharing job: none fits
    (gpu_host((80.0, 80.0), (80.0, 80.0), (80.0, 80.0), (80.0, 80.0)), {"vram:GPU-2": 1.0},
     {"gpus": 4, "min_cores": 0}, 1, 0),
    # only the A100s (positions 0 and 3) are of the kind asked: two jobs, one on each
    (gpu_host((40.0, 40.0), (16.0, 16.0), (80.0, 80.0), (40.0, 40.0)), {},
     {"gpus": 1, "gpu_names": ["*A100*"], "min_vram_gib": 30.0, "min_cores": 0}, 3, 2),
    # an 8-GPU box in two NVLink islands, one GPU of the first held: a 4-GPU job takes the whole
    # second island, not the three free cards of the first plus one across PCIe; then none fits
    (gpu_host(*[(80.0, 80.0)] * 8, islands=((0, 1, 2, 3), (4, 5, 6, 7))), {"vram:GPU-1": 80.0},
     {"gpus": 4, "min_cores": 0}, 2, 1),
    # two 2-GPU jobs on islands of two: each inside one island
    (gpu_host(*[(40.0, 40.0)] * 4, islands=((0, 2), (1, 3))), {}, {"gpus": 2, "min_cores": 0}, 3, 2),
    # no NVLink, two PCIe switches: each 2-GPU job on one switch
    (gpu_host(*[(40.0, 40.0)] * 4, switches=((0, 3), (1, 2))), {}, {"gpus": 2, "min_cores": 0}, 3, 2),
    # capability 8.0 or better: the A100 and the H100, not the V100
    (gpu_host((40.0, 40.0), (16.0, 16.0), (80.0, 80.0)), {},
     {"require_cuda": True, "min_compute_capability": 8.0, "min_cores": 0}, 3, 2),
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
    n = len(cards)
    def groups():
        found = draw(st.sampled_from([(), tuple(range(n)), (tuple(range(0, n, 2)), tuple(range(1, n, 2)))]))
        return tuple(g for g in ((found,) if found and isinstance(found[0], int) else found) if len(g) > 1)
    islands, switches = groups(), groups()
    ledger["ram"] = draw(st.one_of(st.just(0.0), sizes(0, ram), st.just(0.1 + 0.2)))
    ledger["cores"] = float(draw(st.integers(0, cores)))
    # Each need: exactly what is left, a part of it (twice as likely, so claims happen and GPUs
    # are chosen), or any size at all.
    vram_room = draw(st.sampled_from(room)) if room else 0.0
    ram_room, cores_room = ram - ledger["ram"], cores - int(ledger["cores"])
    part = st.floats(0, 1).map(lambda x: round(x, 2))
    kind = draw(st.sampled_from([{}, {}, {"gpu_names": ["*A100*", "*H100*"]}, {"min_compute_capability": 8.0},
                                 {"gpu_names": ["*V100*"], "min_compute_capability": 7.0}]))
    need = {**kind, **draw(st.sampled_from([{}, {}, {"gpus": 1}, {"gpus": 2}, {"gpus": 3}])),
            "require_cuda": draw(st.booleans()),
            "min_vram_gib": draw(st.one_of(st.just(vram_room), part.map(lambda x: round(vram_room * x, 2)),
                                           part.map(lambda x: round(vram_room * x, 2)), sizes(0, 90))),
            "min_ram_gib": draw(st.one_of(st.just(ram_room), part.map(lambda x: round(ram_room * x, 2)),
                                          part.map(lambda x: round(ram_room * x, 2)), sizes(0, 70))),
            "min_cores": draw(st.one_of(st.just(cores_room), st.integers(0, max(0, cores_room)),
                                        st.integers(0, max(0, cores_room)), st.integers(0, 16)))}
    return (gpu_host(*cards, ram=ram, cores=cores, islands=islands, switches=switches),
            {k: v for k, v in ledger.items() if v}, need)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fleet=fleets(), jobs=st.integers(1, 4))
def test_lua_claim_agrees_with_the_pure_rule(store, fleet, jobs):
    """claim.lua's resource check and scheduler.matching.resources_reason decide alike, and the
    script takes the GPUs choose_gpus names and reserves exactly the job's needs there."""
    host, ledger, need = fleet
    if need.get("gpu_names") or need.get("min_compute_capability"):
        need["require_cuda"] = True  # a kind asked without CUDA only warns; the rule is the same
    parsed = parse_manifest(tomli_w.dumps({"schema_version": 1, "jobs": [{"name": "j", "model": "m", **need}]}),
                            "m.toml")
    cls = ConstraintClass.of(parsed.jobs[0], {})
    assume(static_reason(cls, host, False) is None)  # the static rule's, never offered to the script
    claim_each_and_compare(store, host, ledger, need, jobs)
