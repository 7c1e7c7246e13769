"""The matching rule: may this host run this job, and if not, the first reason why.

Pure functions over plain data, no Redis, no I/O. The claim (``worker.claim``),
``fleet explain``, ``fleet probe``, load-time warnings and the simulator all call
these; claim.lua's resource check and GPU choice are proven to agree with
:func:`resources_reason` and :func:`best_fit_gpu` by tests/test_claim_agreement.py.

Order of checks (the first failure is the reason reported):
1. the host's ``deny_jobs`` then ``allow_jobs`` (model or job name globs);
2. the job's ``denied_hosts`` then ``allowed_hosts`` (host name globs);
3. ``require_cuda``; 4. ``min_vram_gib`` against the best free GPU;
5. ``min_ram_gib`` and 6. ``min_cores`` against what the host has left after the
   jobs other fleet workers already run there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from fnmatch import fnmatchcase
from typing import Iterable, Mapping

from .manifest.identity import digest
from .manifest.model import HostSpec, JobSpec
from .resources import HostResources

EPSILON = 1e-9


def _first_glob(globs: Iterable[str], *candidates: str) -> str | None:
    for glob in globs:
        if any(fnmatchcase(c, glob) for c in candidates):
            return glob
    return None


def host_rule_reason(host: HostSpec | None, model: str, job_name: str) -> str | None:
    """Why the host's allow/deny table refuses the job, or None. Deny wins over allow."""
    if host is None:
        return None
    hit = _first_glob(host.deny_jobs, model, job_name)
    if hit is not None:
        return f"host deny_jobs matches {hit!r}"
    if host.allow_jobs and _first_glob(host.allow_jobs, model, job_name) is None:
        return f"not in host allow_jobs {list(host.allow_jobs)}"
    return None


def job_host_reason(allowed_hosts: Iterable[str], denied_hosts: Iterable[str], hostname: str) -> str | None:
    """Why the job's own host lists refuse ``hostname``, or None."""
    if _first_glob(denied_hosts, hostname) is not None:
        return "denied by job.denied_hosts"
    allowed = list(allowed_hosts)
    if allowed and _first_glob(allowed, hostname) is None:
        return "not in job.allowed_hosts"
    return None


@dataclass(frozen=True)
class ConstraintClass:
    """What every job of one class needs; jobs of a class are interchangeable to matching.

    ``rejected_by`` folds the manifest hosts' allow/deny tables into the class, so
    a worker decides host rules per class (a few) rather than per job (many).
    """

    require_cuda: bool
    prefer_cuda: bool
    min_vram_gib: float
    min_ram_gib: float
    min_cores: int
    allowed_hosts: tuple[str, ...]
    denied_hosts: tuple[str, ...]
    rejected_by: tuple[str, ...]

    @cached_property
    def class_id(self) -> str:
        return digest(self.to_dict())[:12]

    def to_dict(self) -> dict:
        return {
            "require_cuda": self.require_cuda,
            "prefer_cuda": self.prefer_cuda,
            "min_vram_gib": self.min_vram_gib,
            "min_ram_gib": self.min_ram_gib,
            "min_cores": self.min_cores,
            "allowed_hosts": list(self.allowed_hosts),
            "denied_hosts": list(self.denied_hosts),
            "rejected_by": list(self.rejected_by),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "ConstraintClass":
        return cls(
            require_cuda=bool(data["require_cuda"]),
            prefer_cuda=bool(data["prefer_cuda"]),
            min_vram_gib=float(data["min_vram_gib"]),
            min_ram_gib=float(data["min_ram_gib"]),
            min_cores=int(data["min_cores"]),
            allowed_hosts=tuple(data["allowed_hosts"]),
            denied_hosts=tuple(data["denied_hosts"]),
            rejected_by=tuple(data["rejected_by"]),
        )

    @classmethod
    def of(cls, job: JobSpec, hosts: Mapping[str, HostSpec]) -> "ConstraintClass":
        s = job.scheduling
        rejected = sorted(name for name, h in hosts.items() if host_rule_reason(h, job.model, job.name))
        return cls(
            require_cuda=bool(s["require_cuda"]),
            prefer_cuda=bool(s["prefer_cuda"]),
            min_vram_gib=float(s["min_vram_gib"]),
            min_ram_gib=float(s["min_ram_gib"]),
            min_cores=int(s["min_cores"]),
            allowed_hosts=tuple(s["allowed_hosts"]),
            denied_hosts=tuple(s["denied_hosts"]),
            rejected_by=tuple(rejected),
        )


@dataclass(frozen=True)
class Free:
    """What a host has left right now for one more job (after the per-host ledger)."""

    ram_gib: float
    cores: float
    gpu_vram_gib: tuple[float, ...]  # free VRAM per visible GPU of this worker


def free_of(host: HostResources, reserved_ram_gib: float = 0.0, reserved_cores: float = 0.0,
            reserved_vram_gib: Mapping[str, float] | None = None) -> Free:
    """Capacity left on ``host`` after the reservations of running fleet jobs (the host ledger).

    A GPU's free VRAM is the smaller of what the probe saw free and its total
    minus fleet's reservations: a job's real usage may not show yet, and memory
    used outside fleet is not in the ledger.
    """
    reserved_vram_gib = reserved_vram_gib or {}
    return Free(
        ram_gib=host.ram_total_gib - reserved_ram_gib,
        cores=host.cores - reserved_cores,
        gpu_vram_gib=tuple(min(g.vram_free_gib, g.vram_total_gib - reserved_vram_gib.get(g.ledger_key, 0.0))
                           for g in host.gpus),
    )


def ledger_free(host: HostResources, ledger: Mapping[str, float]) -> Free:
    """:func:`free_of` from a host ledger as stored in Redis (fields ram, cores, vram:<gpu key>)."""
    return free_of(host, ledger.get("ram", 0.0), ledger.get("cores", 0.0),
                   {k[5:]: v for k, v in ledger.items() if k.startswith("vram:")})


def static_reason(cls: ConstraintClass, hostname: str, host_known: bool, cuda: bool) -> str | None:
    """The reasons that no amount of waiting fixes: host rules, host lists, CUDA."""
    if host_known and hostname in cls.rejected_by:
        return "host allow/deny table refuses it"
    reason = job_host_reason(cls.allowed_hosts, cls.denied_hosts, hostname)
    if reason:
        return reason
    if cls.require_cuda and not cuda:
        return "require_cuda but host has no CUDA GPU"
    return None


def best_fit_gpu(min_vram_gib: float, gpu_free: tuple[float, ...]) -> int | None:
    """Index (into ``gpu_free``) of the smallest free GPU that fits, so big cards stay free for big jobs."""
    best = None
    for i, free in enumerate(gpu_free):
        if free + EPSILON >= min_vram_gib and (best is None or free < gpu_free[best]):
            best = i
    return best


def resources_reason(cls: ConstraintClass, free: Free, capacity: HostResources | None = None) -> str | None:
    """Why the job does not fit what the host has left now, or None.

    With ``capacity`` given, a job that could never fit even on an idle host says
    so (``> total``), which explain shows differently from "busy".
    """
    # VRAM binds wherever the job will use a GPU: always with require_cuda, and on
    # CUDA hosts otherwise (a CPU-only host runs a non-require_cuda job on its CPU).
    if cls.min_vram_gib > 0 and (cls.require_cuda or free.gpu_vram_gib):
        if best_fit_gpu(cls.min_vram_gib, free.gpu_vram_gib) is None:
            return f"min_vram_gib {_n(cls.min_vram_gib)} > free {_n(max(free.gpu_vram_gib, default=0.0))}"
    if cls.min_ram_gib > free.ram_gib + EPSILON:
        total = f" (total {_n(capacity.ram_total_gib)})" if capacity else ""
        return f"min_ram_gib {_n(cls.min_ram_gib)} > free {_n(free.ram_gib)}{total}"
    if cls.min_cores > free.cores + EPSILON:
        total = f" (total {capacity.cores})" if capacity else ""
        return f"min_cores {cls.min_cores} > free {_n(free.cores)}{total}"
    return None


def class_reason(cls: ConstraintClass, host: HostResources, host_known: bool, free: Free) -> str | None:
    """First failing constraint of ``cls`` on ``host`` with ``free`` left, or None if it may run."""
    return static_reason(cls, host.hostname, host_known, host.cuda) or resources_reason(cls, free, host)


def job_reason(job: JobSpec, host_spec: HostSpec | None, host: HostResources, free: Free) -> str | None:
    """Like :func:`class_reason` but names the host rule that matched (for explain)."""
    reason = host_rule_reason(host_spec, job.model, job.name)
    if reason:
        return reason
    cls = ConstraintClass.of(job, {})
    return class_reason(cls, host, host_spec is not None, free)


def _n(x: float) -> str:
    """Whole numbers as integers, others to one decimal: ``min_vram_gib 40 > free 23.5``."""
    return str(int(round(x))) if abs(x - round(x)) < 0.05 else f"{x:.1f}"
