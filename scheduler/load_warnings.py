"""Warnings a load can only give with the store at hand: what the fleet's workers reported.

The manifest alone cannot say that a job asks for GPUs no host has (it declares hosts'
rules, not their hardware); the worker registry can, for the hosts workers have run on.
Pure: the store reads the workers, and the load (scheduler/store/loading.py) calls this
with the classes it built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .errors import Problem
from .manifest.model import Manifest
from .matching import ConstraintClass, ever_reason, gpu_count, job_host_reason
from .resources import HostResources

if TYPE_CHECKING:
    from .store.workers import WorkerInfo

MAX_GPU_WARNINGS = 20  # then one line counting the rest: a 100,000-job sweep must not print 100,000


def gpu_warnings(manifest: Manifest, classes_of_jobs: Sequence[ConstraintClass],
                 workers: Sequence["WorkerInfo"]) -> list[Problem]:
    """A warning per job that needs GPUs none of the declared hosts it may run on could ever
    give it, judged by what the workers seen on those hosts last reported (a host no worker
    has reported is unknown, so not judged; hosts its rules refuse are the loader's warning).
    ``classes_of_jobs``: each job's class, as the load built them (equal ones one object,
    scheduler.store.loading.job_classes); judged once per class."""
    known: dict[str, HostResources] = {}
    beats: dict[str, float] = {}
    for w in workers:
        name = w.host.hostname
        if name in manifest.hosts and w.heartbeat > beats.get(name, float("-inf")):
            known[name], beats[name] = w.host, w.heartbeat
    if not known:
        return []
    distinct = {id(cls): cls for cls in classes_of_jobs}
    verdicts = {key: why for key, cls in distinct.items() if (why := _never_given(cls, known))}
    if not verdicts:
        return []
    out: list[Problem] = []
    for job, cls in zip(manifest.jobs, classes_of_jobs):
        if id(cls) in verdicts:
            out.append(Problem(manifest.path, f"no declared host a worker has reported could ever give it its "
                                              f"GPUs ({verdicts[id(cls)]}); it waits for one that can",
                               job.locator(), "gpus"))
    if len(out) > MAX_GPU_WARNINGS:
        rest = len(out) - MAX_GPU_WARNINGS
        out = out[:MAX_GPU_WARNINGS] + [Problem(manifest.path, f"and {rest} more jobs no declared host could ever "
                                                               f"give their GPUs")]
    return out


def _never_given(cls: ConstraintClass, known: dict[str, HostResources]) -> str | None:
    """Each known host's reason, when every one the class's host rules and lists leave cannot
    ever give it its GPUs; None when one can, or the class needs none, or none is left."""
    if gpu_count(cls, True) == 0:
        return None
    reasons = []
    for name, host in sorted(known.items()):
        if name in cls.rejected_by or job_host_reason(cls.allowed_hosts, cls.denied_hosts, name):
            continue
        why = ever_reason(cls, host)
        if why is None:
            return None
        reasons.append(f"{name}: {why}")
    return "; ".join(reasons) or None
