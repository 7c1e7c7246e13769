"""Warnings a load can only give with the store at hand: what the fleet's workers reported.

The manifest alone cannot say that a job asks for GPUs no host has (it declares hosts'
rules, not their hardware); the worker registry can, for the hosts workers have run on.
Pure: the store reads the workers and calls this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import Problem
from .manifest.model import Manifest
from .matching import ConstraintClass, ever_reason, gpu_count, host_rule_reason, job_host_reason

if TYPE_CHECKING:
    from .store.workers import WorkerInfo

MAX_GPU_WARNINGS = 20  # then one line counting the rest: a 100,000-job sweep must not print 100,000


def gpu_warnings(manifest: Manifest, workers: list["WorkerInfo"]) -> list[Problem]:
    """A warning per job that needs GPUs none of the declared hosts it may run on could ever
    give it, judged by what the workers seen on those hosts last reported (a host no worker
    has reported is unknown, so not judged; hosts its rules refuse are the loader's warning)."""
    known: dict[str, "WorkerInfo"] = {}
    for w in workers:
        name = w.host.hostname
        if name in manifest.hosts and (name not in known or w.heartbeat > known[name].heartbeat):
            known[name] = w
    if not known:
        return []
    verdicts: dict[tuple[ConstraintClass, str], str | None] = {}  # the rule per class and host, once
    out: list[Problem] = []
    for job in manifest.jobs:
        cls = ConstraintClass.of(job, {})
        if gpu_count(cls, True) == 0:
            continue
        reasons = []
        for name, worker in sorted(known.items()):
            if host_rule_reason(manifest.hosts[name], job.model, job.name) or \
                    job_host_reason(cls.allowed_hosts, cls.denied_hosts, name):
                continue
            if (cls, name) not in verdicts:
                verdicts[cls, name] = ever_reason(cls, worker.host)
            reasons.append((name, verdicts[cls, name]))
        if reasons and all(why for _, why in reasons):
            said = "; ".join(f"{name}: {why}" for name, why in reasons)
            out.append(Problem(manifest.path, f"no declared host a worker has reported could ever give it its "
                                              f"GPUs ({said}); it waits for one that can", job.locator(), "gpus"))
    if len(out) > MAX_GPU_WARNINGS:
        rest = len(out) - MAX_GPU_WARNINGS
        out = out[:MAX_GPU_WARNINGS] + [Problem(manifest.path, f"and {rest} more jobs no declared host could ever "
                                                               f"give their GPUs")]
    return out
