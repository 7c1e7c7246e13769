"""Holding GPUs back for a job that needs more of them than are free: wide jobs are not starved.

With a stream of small GPU jobs, a job that needs eight GPUs never finds eight free:
each GPU that frees is taken at once by the next small job. So when the best job a
host could run (the first in queue order that the host could ever take) does not fit
for want of free GPUs, the host *holds* for it: it plans which of its GPUs the wide
job will get (those that free soonest) and starts a smaller job only if that job

1. leaves the planned GPUs, and the RAM and cores the wide job needs, alone; or
2. ends, by its ``timeout_s``, before the wide job could start anyway (backfill, as
   Slurm's backfill scheduler does with time limits).

When the wide job could start is judged from the ``timeout_s`` of the jobs holding its
planned GPUs (a job ends at the latest when its timeout kills it). A running job
without ``timeout_s`` could end at any moment, so while one holds a planned GPU the
wide job could start at any moment too, and nothing backfills onto what it waits for.
One hold per host at a time: the first such job in queue order, which then keeps it
until it starts (a hold sticks: see :func:`choose`). The claim
(claim.lua) applies the same rule; tests/test_reservation.py proves they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from .matching import (EPSILON, ConstraintClass, Free, choose_gpus, gpu_count, gpu_free_for, gpu_kind_ok,
                       resources_reason)

UNKNOWN_END = 0.0  # a running job's expected end when it has no timeout_s: it may end any moment
HOLD_FIELD = "hold:"  # + a class id: the ledger field naming the class a host holds for (since when)


@dataclass(frozen=True)
class Hold:
    """What a host keeps for the job it holds for: its planned GPUs (indices into the host's
    GPUs; ``idle`` of them free now, kept idle), the RAM and cores it needs, and ``start_at``
    (epoch seconds), before which a backfilled job must end: when the planned GPUs are free
    at the latest by their holders' timeout_s, or now while a holder has none."""

    class_id: str
    gpus: tuple[int, ...]
    ram_gib: float
    cores: float
    start_at: float
    idle: int


def _usable(cls: ConstraintClass, free: Free, i: int) -> bool:
    """Whether GPU ``i`` could ever serve ``cls`` (its kind, and its size for a sharing job)."""
    if not gpu_kind_ok(cls, free, i):
        return False
    total = free.gpus[i].vram_total_gib if free.gpus else free.gpu_vram_gib[i]
    return cls.whole_gpus or total + EPSILON >= cls.min_vram_gib


def plan_hold(cls: ConstraintClass, free: Free, ram_total_gib: float, cores_total: float,
              gpu_ends: Sequence[Sequence[float]], now: float) -> Hold | None:
    """The hold a host with ``free`` left (of ``ram_total_gib`` and ``cores_total``) keeps for
    ``cls``, which does not fit now; None when it is not waiting for GPUs here (it needs none,
    the host could never take it, or it waits for RAM or cores only).

    ``gpu_ends``: per GPU, the expected ends of the running jobs that hold it (UNKNOWN_END for
    one without timeout_s). A GPU is free for the job at the latest when all its holders have
    ended; the plan takes the ones that free soonest, free ones first."""
    needed = gpu_count(cls, bool(free.gpu_vram_gib))
    if needed == 0 or cls.min_ram_gib > ram_total_gib + EPSILON or cls.min_cores > cores_total + EPSILON:
        return None
    usable = [i for i in range(len(free.gpu_vram_gib)) if _usable(cls, free, i)]
    if len(usable) < needed:
        return None
    if sum(1 for i in usable if gpu_free_for(cls, free, i)) >= needed:
        return None  # enough GPUs: it waits for RAM or cores, which a hold does not keep

    def free_at(i: int) -> float:
        if gpu_free_for(cls, free, i):
            return now
        ends = gpu_ends[i] if i < len(gpu_ends) else ()
        return max([now] + [now if end == UNKNOWN_END else end for end in ends])
    # Free ones first among equals: a holder that may end any moment still holds its GPU now.
    planned = sorted(usable, key=lambda i: (free_at(i), not gpu_free_for(cls, free, i), i))[:needed]
    return Hold(cls.class_id, tuple(sorted(planned)), cls.min_ram_gib, float(cls.min_cores),
                max(free_at(i) for i in planned), sum(1 for i in planned if gpu_free_for(cls, free, i)))


def ends_in_time(timeout_s: float, hold: Hold, now: float) -> bool:
    """Whether a job with ``timeout_s`` started now ends before the held job could start."""
    return timeout_s > 0 and now + timeout_s <= hold.start_at + EPSILON


def without_held(free: Free, hold: Hold) -> Free:
    """``free`` as a job that must leave the hold alone sees it: the planned GPUs taken, and
    the held job's RAM and cores set aside."""
    vram = tuple(0.0 if i in hold.gpus else v for i, v in enumerate(free.gpu_vram_gib))
    totals = [g.vram_total_gib for g in free.gpus] if free.gpus else list(free.gpu_vram_gib)
    reserved = tuple(max(totals[i], 1.0) if i in hold.gpus else (free.gpu_reserved_gib[i] if free.gpu_reserved_gib
                                                                 else 0.0)
                     for i in range(len(free.gpu_vram_gib)))
    return replace(free, ram_gib=free.ram_gib - hold.ram_gib, cores=free.cores - hold.cores, gpu_vram_gib=vram,
                   gpu_reserved_gib=reserved)


def placement_beside(cls: ConstraintClass, timeout_s: float, free: Free, hold: Hold, now: float
                     ) -> tuple[int, ...] | None:
    """The GPUs a job of ``cls`` may take while the host holds for another job (None: it must
    wait): anywhere it fits if it ends in time, else only beside the hold."""
    if ends_in_time(timeout_s, hold, now) and _fits(cls, free):
        return choose_gpus(cls, free)
    beside = without_held(free, hold)
    return choose_gpus(cls, beside) if _fits(cls, beside) else None


def _fits(cls: ConstraintClass, free: Free) -> bool:
    return resources_reason(cls, free) is None


def choose(classes: Sequence[tuple[ConstraintClass, float, int]], free: Free, ram_total_gib: float,
           cores_total: float, gpu_ends: Sequence[Sequence[float]], now: float, held: str | None = None
           ) -> tuple[ConstraintClass | None, tuple[int, ...] | None, Hold | None]:
    """What a claim takes from ``classes`` (each with its timeout_s and its best job's priority
    level, scheduler.queue_order.priority_level; in queue order, all of them ones this host may
    run): the class, its GPUs, and the hold it respects (None: the host holds for nothing).
    (None, None, hold) when nothing may start.

    ``held``: the class this host already holds for (:func:`ledger_held`). A hold sticks: it
    goes before every class of its priority or a lower one until its job starts here, leaves
    the queue or stops waiting for GPUs, so a wider job that arrives later waits its turn
    instead of taking the GPUs this one was promised (the wait after reaching the head stays
    within one running job's end). Operator priority still wins: a class of a higher
    priority comes first, and may take the hold over."""
    hold = None
    kept = next(((cls, level) for cls, _, level in classes if cls.class_id == held), None) if held else None
    for cls, timeout_s, level in classes:
        if kept is not None and level >= kept[1]:
            first, kept = kept[0], None
            if hold is None:  # nothing of a higher priority holds: the kept class goes first
                if _fits(first, free):
                    return first, choose_gpus(first, free), None
                hold = plan_hold(first, free, ram_total_gib, cores_total, gpu_ends, now)
        if hold is not None and cls.class_id == hold.class_id:
            continue
        if hold is None:
            if _fits(cls, free):
                return cls, choose_gpus(cls, free), None
            hold = plan_hold(cls, free, ram_total_gib, cores_total, gpu_ends, now)
            continue
        gpus = placement_beside(cls, timeout_s, free, hold, now)
        if gpus is not None:
            return cls, gpus, hold
    return None, None, hold


def gpu_ends_of(gpu_keys: Sequence[str], running: Sequence[tuple[Sequence[str], float]]) -> list[list[float]]:
    """Per GPU (by ledger key, in the host's order), the expected ends of the running jobs that
    hold it: ``running`` is each running job's (GPU keys, expected end)."""
    at = {key: i for i, key in enumerate(gpu_keys)}
    ends: list[list[float]] = [[] for _ in gpu_keys]
    for keys, end in running:
        for key in keys:
            if key in at:
                ends[at[key]].append(end)
    return ends


def ledger_holders(ledger: Mapping[str, float]) -> list[tuple[list[str], float]]:
    """Each running GPU job's (GPU keys, expected end) from its host's ledger as stored: the
    ``end:<job>:<gpu keys>`` fields claim.lua writes."""
    return [(name.split(":", 2)[2].split(","), end) for name, end in ledger.items()
            if name.startswith("end:") and name.count(":") >= 2]


def ledger_held(ledger: Mapping[str, float]) -> str | None:
    """The class a host holds for, from its ledger's ``hold:<class id>`` field (claim.lua keeps
    it), or None."""
    return next((name[5:] for name in ledger if name.startswith(HOLD_FIELD)), None)


def hold_words(hold: Hold, held_name: str, gpus_total: int) -> str:
    """How `fleet explain` says a hold: "holding 5 of 8 GPUs for wide-job" (the free GPUs it
    keeps idle for the job; the rest of its plan frees as their jobs end)."""
    return f"holding {hold.idle} of {gpus_total} GPUs for {held_name}"


__all__ = ["HOLD_FIELD", "Hold", "UNKNOWN_END", "choose", "ends_in_time", "gpu_ends_of", "hold_words",
           "ledger_held", "ledger_holders", "placement_beside", "plan_hold", "without_held"]
