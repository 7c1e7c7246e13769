"""The order in which claimable jobs are offered to workers: priority, then the widest, then load order.

Operator priority always wins. Within one priority the job that needs more GPUs goes
first, then, among equal counts, the one that needs more GPU memory per GPU, and
equal needs keep load order (FIFO). Why not plain FIFO: a small job that reaches a
big card first holds part of it, and the job that only that card can run waits
behind it; offering the big jobs first is best-fit-decreasing packing. In
bench/simulate.py (12 hosts, 500 jobs) it cut makespan from 1.11-1.19x to
1.02-1.04x the lower bound. A small job waits behind big ones only on hosts big
enough for both; wherever only it fits, it is next. A wide job that does not fit yet
is held for (scheduler/reservation.py), so the order is also whom a host holds for.

A job's pending score is ``rank + seq``. The rank is computed here, once per load,
and stored with the job, so every Lua script that re-queues a job (finish, deps,
actions) uses exactly this order without knowing the rule. Scores must stay exact
in a double (below 2**53): ranks step by VRAM_STEP per GiB of VRAM, 1,000 GiB levels
per GPU count (0 to 16, more counting as 16) and 17 counts per priority level, which
leaves load order (seq) two hundred million jobs per namespace.
"""

from __future__ import annotations

from scheduler.manifest.fields import PRIORITY_RANGE
from scheduler.matching import ConstraintClass, gpu_count

VRAM_STEP = 2 * 10**8  # the room load order (seq) has: a namespace's first 200 million jobs
VRAM_LEVELS = 1000  # whole GiB 0..999; bigger needs order as 999
GPU_STEP = VRAM_LEVELS * VRAM_STEP
GPU_LEVELS = 17  # 0..16 GPUs; wider jobs order as 16
PRIORITY_STEP = GPU_LEVELS * GPU_STEP


def queue_rank(priority: int, min_vram_gib: float, gpus: int = 0) -> int:
    """The part of a job's pending score fixed by what it is; lower is offered first.

    ``priority`` is within PRIORITY_RANGE (the manifest loader refuses anything else);
    ``gpus`` is how many GPUs the job takes where it runs on GPUs (:func:`width`).
    """
    vram_level = min(VRAM_LEVELS - 1, max(0, int(min_vram_gib)))
    gpu_level = min(GPU_LEVELS - 1, max(0, gpus))
    return ((PRIORITY_RANGE[1] - priority) * PRIORITY_STEP + (GPU_LEVELS - 1 - gpu_level) * GPU_STEP
            + (VRAM_LEVELS - 1 - vram_level) * VRAM_STEP)


def priority_level(score: float) -> int:
    """The priority part of a pending score (0: the highest priority), as the claim reads it
    from `heads` (claim.lua divides by the same PRIORITY_STEP)."""
    return int(score // PRIORITY_STEP)


def width(cls: ConstraintClass) -> int:
    """How many GPUs a job of ``cls`` takes where it runs on GPUs, for the order: the claim's
    count on a CUDA host (scheduler.matching.gpu_count) for a job that must run on one
    (needs_cuda, or min_vram_gib > 0); 0 for one that may run on a CPU (prefer_cuda alone)."""
    return gpu_count(cls, True) if cls.needs_cuda or cls.min_vram_gib > 0 else 0
