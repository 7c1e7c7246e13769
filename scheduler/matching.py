"""The matching rule: may this host run this job, and if not, the first reason why.

Pure functions over plain data, no Redis, no I/O. The claim (``worker.claim``),
``fleet explain``, ``fleet probe``, load-time warnings and the simulator all call
these; claim.lua's resource check and GPU choice are proven to agree with
:func:`resources_reason` and :func:`best_fit_gpu` by tests/test_claim_agreement.py.

Order of checks (the first failure is the reason reported):
1. the host's ``deny_jobs`` then ``allow_jobs`` (model or job name globs);
2. the job's ``denied_hosts`` then ``allowed_hosts`` (host name globs);
3. CUDA (``require_cuda``, or ``gpus`` >= 1); 4. the kind of GPU: ``gpu_names``, then
   ``min_compute_capability``, then whether the host has ``gpus`` such GPUs at all;
5. the job's GPUs free now: ``min_vram_gib`` on each (a job with ``min_vram_gib = 0``
   holds its GPUs whole, so it needs GPUs no fleet job has reserved);
6. ``min_ram_gib`` and 7. ``min_cores`` against what the host has left after the
   jobs other fleet workers already run there.
Steps 1-4 never change while a host stays as it is (:func:`static_reason`); 5-7 do
(:func:`resources_reason`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from fnmatch import fnmatchcase
from typing import Iterable, Mapping, Sequence

from .manifest.identity import digest
from .manifest.model import HostSpec, JobSpec
from .resources import GpuInfo, HostResources

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
    gpus: int | None = None  # None: the default, see gpu_count
    gpu_names: tuple[str, ...] = ()
    min_compute_capability: float = 0.0
    # The class's time limit (0: none): a host holding GPUs for a wide job starts a job of
    # this class on them only if it ends before the wide job could (scheduler/reservation.py).
    timeout_s: float = 0.0

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
            # Only when set: the class id of a job that does not use them stays what it was
            # before they existed, so an upgrade re-indexes nothing.
            **({"gpus": self.gpus} if self.gpus is not None else {}),
            **({"gpu_names": list(self.gpu_names)} if self.gpu_names else {}),
            **({"min_compute_capability": self.min_compute_capability} if self.min_compute_capability else {}),
            **({"timeout_s": self.timeout_s} if self.timeout_s else {}),
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
            gpus=None if data.get("gpus") is None else int(data["gpus"]),
            gpu_names=tuple(data.get("gpu_names") or ()),
            min_compute_capability=float(data.get("min_compute_capability") or 0),
            timeout_s=float(data.get("timeout_s") or 0),
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
            gpus=None if s.get("gpus") is None else int(s["gpus"]),
            gpu_names=tuple(s.get("gpu_names") or ()),
            min_compute_capability=float(s.get("min_compute_capability") or 0),
            timeout_s=float(s.get("timeout_s") or 0),
        )

    @cached_property
    def any_kind_id(self) -> str:
        """The class id where the class accepts every kind of GPU, else "": what a claim sends
        for most classes, read once per class (the claim's client side is a hot path)."""
        return self.class_id if self.accepts_any_gpu else ""

    @property
    def accepts_any_gpu(self) -> bool:
        """Whether every kind of GPU will do (no ``gpu_names``, no ``min_compute_capability``)."""
        return not (self.gpu_names or self.min_compute_capability)

    @property
    def needs_cuda(self) -> bool:
        return self.require_cuda or (self.gpus or 0) > 0

    @property
    def whole_gpus(self) -> bool:
        """A GPU job without ``min_vram_gib`` holds its GPUs whole; with it, it shares them."""
        return self.min_vram_gib <= 0


def gpu_count(cls: ConstraintClass, cuda_host: bool) -> int:
    """How many GPUs a job of ``cls`` gets on a host with (or without) CUDA: ``gpus`` where
    set; else 1 for a job that runs on a GPU there (``require_cuda``, or on a CUDA host
    ``min_vram_gib > 0`` or ``prefer_cuda``), else 0."""
    if cls.gpus is not None:
        return cls.gpus
    if cls.require_cuda:
        return 1
    return 1 if cuda_host and (cls.min_vram_gib > 0 or cls.prefer_cuda) else 0


def _wanted_capability(value: float) -> tuple[int, int]:
    major = int(value)
    return major, int(round((value - major) * 10))


def gpu_kind_fits(cls: ConstraintClass, gpu: GpuInfo) -> bool:
    """Whether ``gpu`` is of a kind the job accepts (``gpu_names``, ``min_compute_capability``)."""
    if cls.gpu_names and _first_glob(cls.gpu_names, gpu.name) is None:
        return False
    if cls.min_compute_capability:
        have = gpu.capability
        return have is not None and have >= _wanted_capability(cls.min_compute_capability)
    return True


def gpu_kind_mask(cls: ConstraintClass, gpus: Sequence[GpuInfo]) -> str | None:
    """The GPUs of a kind the job accepts as '0'/'1' per GPU (what claim.lua reads), or None
    when the job accepts every kind."""
    if cls.accepts_any_gpu:
        return None
    return "".join("1" if gpu_kind_fits(cls, g) else "0" for g in gpus)


def gpu_kind_reason(cls: ConstraintClass, gpus: Sequence[GpuInfo]) -> str | None:
    """Why no waiting gets a job of ``cls`` its GPUs on a host with ``gpus``: none of the
    names or the capability it asks for, or fewer such GPUs than it needs."""
    needed = gpu_count(cls, bool(gpus))
    if needed == 0 or not gpus:
        return None
    named = [g for g in gpus if not cls.gpu_names or _first_glob(cls.gpu_names, g.name) is not None]
    if not named:
        has = ", ".join(sorted({g.name for g in gpus}))
        return f"no GPU matches gpu_names {list(cls.gpu_names)} (has {has})"
    kind = [g for g in named if gpu_kind_fits(cls, g)]
    if not kind:
        known = [g.capability for g in named if g.capability is not None]
        best = "%d.%d" % max(known) if known else "unknown"
        return f"compute capability {best} < {_n_cc(cls.min_compute_capability)}"
    if len(kind) < needed:
        such = " such" if len(kind) < len(gpus) else ""
        return f"gpus {needed} > {len(kind)}{such} GPUs on the host"
    return None


def _n_cc(value: float) -> str:
    return "%d.%d" % _wanted_capability(value)


@dataclass(frozen=True)
class Free:
    """What a host has left right now for one more job (after the per-host ledger)."""

    ram_gib: float
    cores: float
    gpu_vram_gib: tuple[float, ...]  # free VRAM per visible GPU of this worker
    gpu_reserved_gib: tuple[float, ...] = ()  # what fleet jobs reserved on each (0: nobody holds it)
    gpus: tuple[GpuInfo, ...] = ()  # the GPUs themselves (kind, total), in the same order; () reads as any kind
    gpu_island: tuple[int, ...] = ()  # each GPU's NVLink island (HostResources.gpu_islands); () reads as none
    gpu_switch: tuple[int, ...] = ()  # each GPU's PCIe switch group (HostResources.gpu_switches); () as none


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
        gpu_reserved_gib=tuple(reserved_vram_gib.get(g.ledger_key, 0.0) for g in host.gpus),
        gpus=tuple(host.gpus),
        gpu_island=host.gpu_islands,
        gpu_switch=host.gpu_switches,
    )


def ledger_free(host: HostResources, ledger: Mapping[str, float]) -> Free:
    """:func:`free_of` from a host ledger as stored in Redis (fields ram, cores, vram:<gpu key>)."""
    return free_of(host, ledger.get("ram", 0.0), ledger.get("cores", 0.0),
                   {k[5:]: v for k, v in ledger.items() if k.startswith("vram:")})


def static_reason(cls: ConstraintClass, host: HostResources, host_known: bool) -> str | None:
    """The reasons that no amount of waiting fixes: host rules, host lists, CUDA, the kind of GPU."""
    if host_known and host.hostname in cls.rejected_by:
        return "host allow/deny table refuses it"
    reason = job_host_reason(cls.allowed_hosts, cls.denied_hosts, host.hostname)
    if reason:
        return reason
    if cls.needs_cuda and not host.cuda:
        if cls.require_cuda:
            return "require_cuda but host has no CUDA GPU"
        return f"gpus {cls.gpus} but host has no CUDA GPU"
    return gpu_kind_reason(cls, host.gpus)


def best_fit_gpu(min_vram_gib: float, gpu_free: tuple[float, ...]) -> int | None:
    """Index (into ``gpu_free``) of the smallest free GPU that fits, so big cards stay free for big jobs."""
    best = None
    for i, free in enumerate(gpu_free):
        if free + EPSILON >= min_vram_gib and (best is None or free < gpu_free[best]):
            best = i
    return best


def gpu_kind_ok(cls: ConstraintClass, free: Free, i: int) -> bool:
    """Whether GPU ``i`` of ``free`` is of a kind ``cls`` accepts (any, when the kinds are unknown)."""
    return not free.gpus or gpu_kind_fits(cls, free.gpus[i])


def _unheld(free: Free, i: int) -> bool:
    return i >= len(free.gpu_reserved_gib) or free.gpu_reserved_gib[i] <= EPSILON


def gpu_free_for(cls: ConstraintClass, free: Free, i: int) -> bool:
    """Whether GPU ``i`` can take a job of ``cls`` now: of its kind, and held by no fleet job
    (a job held whole) or with ``min_vram_gib`` free (a sharing job)."""
    if not gpu_kind_ok(cls, free, i):
        return False
    return _unheld(free, i) if cls.whole_gpus else free.gpu_vram_gib[i] + EPSILON >= cls.min_vram_gib


def choose_gpus(cls: ConstraintClass, free: Free) -> tuple[int, ...] | None:
    """Indices (into ``free``'s GPUs, ascending) of the GPUs a job of ``cls`` gets now; ``()``
    when it needs none, None when too few are free.

    Sharing (``min_vram_gib > 0``): the GPUs with the least free VRAM that still fit, so big
    cards stay free for big jobs (one GPU: :func:`best_fit_gpu`). Whole: GPUs no fleet job
    holds, the smallest first for the same reason. A job of several GPUs stays inside one
    NVLink island where one has enough (the island of the best-ranked GPU that does, its
    best-ranked GPUs: DDP's all-reduce over NVLink, not PCIe), else inside one PCIe switch
    group the same way, else takes the best-ranked GPUs. claim.lua chooses the same GPUs
    (tests/test_claim_agreement.py)."""
    needed = gpu_count(cls, bool(free.gpu_vram_gib))
    if needed == 0:
        return ()
    fit = [i for i in range(len(free.gpu_vram_gib)) if gpu_free_for(cls, free, i)]
    if cls.whole_gpus:
        fit.sort(key=lambda i: (free.gpus[i].vram_total_gib if free.gpus else 0.0, i))
    else:
        fit.sort(key=lambda i: (free.gpu_vram_gib[i], i))
    if len(fit) < needed:
        return None
    if needed > 1:
        for groups in (free.gpu_island, free.gpu_switch):  # the closest link first
            if not groups:
                continue
            for first in fit:
                together = [i for i in fit if groups[i] == groups[first]]
                if len(together) >= needed:
                    return tuple(sorted(together[:needed]))
    return tuple(sorted(fit[:needed]))


def _gpus_reason(cls: ConstraintClass, free: Free) -> str | None:
    if choose_gpus(cls, free) is not None:
        return None
    needed = gpu_count(cls, bool(free.gpu_vram_gib))
    enough = sum(1 for i in range(len(free.gpu_vram_gib)) if gpu_free_for(cls, free, i))
    if cls.whole_gpus:
        return f"gpus {needed} > {enough} GPUs free (a job without min_vram_gib holds its GPUs whole)"
    if needed == 1:
        best = max((v for i, v in enumerate(free.gpu_vram_gib) if gpu_kind_ok(cls, free, i)), default=0.0)
        return f"min_vram_gib {_n(cls.min_vram_gib)} > free {_n(best)}"
    return f"gpus {needed} > {enough} GPUs free with {_n(cls.min_vram_gib)} GiB"


def resources_reason(cls: ConstraintClass, free: Free, capacity: HostResources | None = None) -> str | None:
    """Why the job does not fit what the host has left now, or None.

    With ``capacity`` given, a job that could never fit even on an idle host says
    so (``> total``), which explain shows differently from "busy".
    """
    # GPUs bind wherever the job will use one: always when it needs CUDA, and on CUDA
    # hosts otherwise (a CPU-only host runs a job that does not need CUDA on its CPU).
    if cls.needs_cuda or free.gpu_vram_gib:
        reason = _gpus_reason(cls, free)
        if reason:
            return reason
    if cls.min_ram_gib > free.ram_gib + EPSILON:
        total = f" (total {_n(capacity.ram_total_gib)})" if capacity else ""
        return f"min_ram_gib {_n(cls.min_ram_gib)} > free {_n(free.ram_gib)}{total}"
    if cls.min_cores > free.cores + EPSILON:
        total = f" (total {capacity.cores})" if capacity else ""
        return f"min_cores {cls.min_cores} > free {_n(free.cores)}{total}"
    return None


def class_reason(cls: ConstraintClass, host: HostResources, host_known: bool, free: Free) -> str | None:
    """First failing constraint of ``cls`` on ``host`` with ``free`` left, or None if it may run."""
    return static_reason(cls, host, host_known) or resources_reason(cls, free, host)


def ever_reason(cls: ConstraintClass, host: HostResources) -> str | None:
    """Why ``cls`` could not run on ``host`` even idle, every GPU free (None: some day it can):
    what a load warns about for the declared hosts workers have reported."""
    idle = replace(host, gpus=tuple(replace(g, vram_free_gib=g.vram_total_gib) for g in host.gpus))
    return class_reason(cls, idle, True, free_of(idle))


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
