"""Soft preferences between workers: who should take a job when several idle ones could.

The claim itself stays first-come; preference is expressed by *deferring*: a
worker leaves a class alone for a short grace period when a better-placed idle
worker exists, and takes it anyway once the grace has passed, so a preference
can delay a job by at most ``grace_s`` and never starve it. For a class C, idle
live worker O is better placed than this worker W when, in order:

1. C wants a GPU (``require_cuda`` or ``prefer_cuda``): O has CUDA and W has none;
   then O's best-fitting GPU is smaller than W's (best fit: small jobs leave the big
   cards to the big jobs);
2. C is a CPU job: O's host has no GPU and W's has (CPU work leaves GPU hosts'
   cores and RAM to GPU jobs);
3. otherwise, O's host has a higher ``[hosts.NAME] priority`` than W's.

Placement (1, 2) outranks host priority because it decides makespan: with host
priority first, a simulated lab fleet finished 500 jobs later than plain FIFO
first-fit (bench/simulate.py).

The rule is packed into one number per (class, host), :func:`placement_rank`, which each
idle worker offers on the preference board (scheduler/store/board.py); a worker then asks
the board, not every other worker's record, whether a better-placed one is idle, so an idle
worker's cost stays the same however large the fleet (issue 18). The board names only workers
that have offered for a class, so a class just seen waits a short settle (DEFAULT_SETTLE_S)
while other workers are idle, for their offers to arrive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from scheduler.manifest.model import HostSpec
from scheduler.matching import ConstraintClass, free_of, resources_reason, static_reason
from scheduler.resources import HostResources

DEFAULT_GRACE_S = 0.5


def _priority(hosts: dict[str, HostSpec], hostname: str) -> int:
    spec = hosts.get(hostname)
    return spec.priority if spec else 0


def _fit_gpu_total(cls: ConstraintClass, host: HostResources) -> float | None:
    """Total VRAM of the smallest GPU on ``host`` that could hold ``cls`` when idle."""
    fitting = [g.vram_total_gib for g in host.gpus if g.vram_total_gib + 1e-9 >= cls.min_vram_gib]
    return min(fitting) if fitting else None


def _could_run(cls: ConstraintClass, host: HostResources, hosts: dict[str, HostSpec]) -> bool:
    return (static_reason(cls, host, host.hostname in hosts) is None
            and resources_reason(cls, free_of(host)) is None)


# A rank packs the rule's three tests, in order, into one exact float (below 2**53): the
# placement test, then (for a GPU class) the fitting GPU's size, smaller better, then priority.
_PLACED = 10.0 ** 15
_FIT = 10.0 ** 5
_FIT_CENTI_GIB_MAX = 10 ** 7  # 100,000 GiB: more than any GPU
_PRIORITY_SHIFT = 50_000  # priorities are -1000..1000 (scheduler/manifest/fields.py PRIORITY_RANGE)


def placement_rank(cls: ConstraintClass, host: HostResources, hosts: dict[str, HostSpec]) -> float | None:
    """How well placed ``host`` is, when idle, for ``cls`` (higher is better; see the module
    rules), or None when it could not run it even idle. Workers offer it on the preference
    board (scheduler/store/board.py), so each compares its own rank with the best idle one
    instead of reading every worker."""
    if not _could_run(cls, host, hosts):
        return None
    fit_term = 0
    if cls.require_cuda or cls.prefer_cuda:
        placed = host.cuda
        fit = _fit_gpu_total(cls, host) if host.cuda else None
        if fit is not None:
            fit_term = max(0, _FIT_CENTI_GIB_MAX - round(fit * 100))
    else:
        placed = not host.gpus
    return (_PLACED * int(placed) + _FIT * fit_term) + (_priority(hosts, host.hostname) + _PRIORITY_SHIFT)


def better_placed(cls: ConstraintClass, me: HostResources, other: HostResources,
                  hosts: dict[str, HostSpec]) -> bool:
    """Whether ``other`` (idle) should get first pick of ``cls`` over ``me`` (see the module rules)."""
    theirs = placement_rank(cls, other, hosts)
    if theirs is None:
        return False
    mine = placement_rank(cls, me, hosts)
    return mine is None or theirs > mine


# A class a worker has only just seen (a load added it, or the worker just started) is left
# alone this long while other workers are idle: they saw the same event and may not have
# offered their ranks for it yet, and the board can only name a better-placed worker that has
# offered. Shorter than the grace, so the best-placed one, which settles too, claims before the
# others' grace runs out.
DEFAULT_SETTLE_S = 0.2


@dataclass
class Deferrals:
    """Per class, when this worker first saw it and when it first stepped aside for a
    better-placed one."""

    grace_s: float = DEFAULT_GRACE_S
    settle_s: float = DEFAULT_SETTLE_S
    since: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    def filter(self, classes: list[ConstraintClass], better_elsewhere: set[str] | frozenset[str],
               others_idle: int = 0, now: float | None = None) -> tuple[list[ConstraintClass], float | None]:
        """The classes to try now, and how long until a deferred one is due (None if none is
        deferred); ``better_elsewhere``: the ids of the classes a better-placed idle worker
        could take, ``others_idle``: how many other workers are idle (the preference board's
        answer). A class seen for the first time waits ``settle_s`` while others are idle (see
        DEFAULT_SETTLE_S); either wait ends ``grace_s`` after the class was first seen at most."""
        now = time.time() if now is None else now
        for gone in self.seen.keys() - {cls.class_id for cls in classes}:
            del self.seen[gone]
        keep, next_due = [], None
        for cls in classes:
            first_seen = self.seen.setdefault(cls.class_id, now)
            settling = others_idle > 0 and now - first_seen < self.settle_s
            if not settling and cls.class_id not in better_elsewhere:
                self.since.pop(cls.class_id, None)
                keep.append(cls)
                continue
            first = self.since.setdefault(cls.class_id, first_seen)
            if settling:
                due = first_seen + self.settle_s - now
            elif now - first >= self.grace_s:
                keep.append(cls)  # the better-placed worker had its chance
                continue
            else:
                due = first + self.grace_s - now
            next_due = due if next_due is None else min(next_due, due)
        return keep, next_due
