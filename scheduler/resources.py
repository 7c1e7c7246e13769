"""What a host offers, as plain frozen data.

The worker's probe (``worker.probe``) or a declared host profile
(``worker.host_profile``) produces a :class:`HostResources`; the pure matching rule
(``scheduler.matching``), the claim, ``fleet probe`` and ``fleet status`` read it.
It lives in ``scheduler`` so that matching never imports the worker package.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Sequence

GIB = 1024**3

# How two GPUs reach each other, closest first: a later placement step prefers the
# pair (or group) whose worst link ranks earliest. "board" is NVML's INTERNAL (two
# GPUs on one card); the PCIe kinds are nvidia-smi topo's PIX/PXB, PHB, NODE and SYS.
# A pair with no entry is "unknown": NVML could not say, or one of them is a MIG
# instance (MIG has no peer-to-peer path at all).
LINK_KINDS = ("nvlink", "board", "pcie-switch", "pcie-host", "numa", "system")
UNKNOWN_LINK = "unknown"


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as this process sees it (after CUDA_VISIBLE_DEVICES)."""

    index: int  # the index the job will see in CUDA_VISIBLE_DEVICES order
    name: str
    vram_total_gib: float
    vram_free_gib: float
    uuid: str = ""
    vram_used_gib: float = 0.0
    compute_capability: str | None = None  # "8.0"; None where NVML could not say
    mig_mode: bool | None = None  # None: not supported or unknown
    nvml_index: int | None = None  # NVML's own index, which ignores CUDA_VISIBLE_DEVICES

    @property
    def capability(self) -> tuple[int, int] | None:
        """``compute_capability`` as numbers, so "8.9" < "10.0" compares right; None if unknown
        (or not NVML's "major.minor")."""
        major, _, minor = (self.compute_capability or "").partition(".")
        try:
            return int(major), int(minor or 0)
        except ValueError:
            return None

    @property
    def ledger_key(self) -> str:
        """The GPU's name in the host ledger: its UUID where known (stable whatever
        CUDA_VISIBLE_DEVICES a worker runs with), else its NVML or visible index."""
        return self.uuid or f"gpu{self.nvml_index if self.nvml_index is not None else self.index}"


@dataclass(frozen=True)
class HostResources:
    """Capacity of one host as one worker sees it.

    ``links`` is the topology: one ``(a, b, kind)`` per GPU pair whose link is known,
    ``a < b`` being ``GpuInfo.index`` values and ``kind`` one of
    :data:`LINK_KINDS`. Pairs, not per-GPU groups, because PCIe distance is a
    property of a pair; in JSON it is ``[[0, 1, "nvlink"], ...]``.
    """

    hostname: str
    cores: int
    ram_total_gib: float
    ram_available_gib: float
    gpus: tuple[GpuInfo, ...] = ()
    cuda_driver_version: str | None = None
    simulated: bool = False  # from --host-profile rather than a real probe
    notes: tuple[str, ...] = field(default=())  # one line per degraded probe step
    links: tuple[tuple[int, int, str], ...] = ()

    @property
    def cuda(self) -> bool:
        return bool(self.gpus)

    def link(self, a: int, b: int) -> str:
        """How GPUs ``a`` and ``b`` (indices) are linked: a :data:`LINK_KINDS` entry or "unknown"."""
        lo, hi = min(a, b), max(a, b)
        return next((kind for x, y, kind in self.links if (x, y) == (lo, hi)), UNKNOWN_LINK)

    def nvlink_islands(self) -> list[list[int]]:
        """GPU indices joined by NVLink, directly or through each other, as sorted groups of 2+."""
        islands = {min(g): sorted(g) for g in self._components(("nvlink",)).values() if len(g) > 1}
        return [islands[k] for k in sorted(islands)]

    @cached_property
    def gpu_islands(self) -> tuple[int, ...]:
        """Per GPU (in ``gpus`` order), the island it is in: the lowest index of its NVLink
        island, or its own index when NVLink joins it to no other. Placement keeps a multi-GPU
        job inside one island where it can (scheduler.matching.choose_gpus)."""
        return self._groups(("nvlink",))

    @cached_property
    def gpu_switches(self) -> tuple[int, ...]:
        """Per GPU, its group of GPUs joined by a PCIe switch or closer (NVLink, one board),
        named by its lowest index: placement's second choice after one NVLink island. Both are
        computed once per host value: every claim and every judged worker reads them."""
        return self._groups(("nvlink", "board", "pcie-switch"))

    def _groups(self, kinds: tuple[str, ...]) -> tuple[int, ...]:
        group = self._components(kinds)
        return tuple(min(group[g.index]) for g in self.gpus)

    def _components(self, kinds: tuple[str, ...]) -> dict[int, set[int]]:
        """Each GPU index's set of GPUs joined to it by links of ``kinds``, directly or through others."""
        group = {g.index: {g.index} for g in self.gpus}
        for a, b, kind in self.links:
            if kind in kinds and a in group and b in group and group[a] is not group[b]:
                merged = group[a] | group[b]
                for i in merged:
                    group[i] = merged
        return group

    def with_gpus(self, indices: Sequence[int]) -> "HostResources":
        """Only the GPUs at ``indices``, in that order, renumbered 0.. as CUDA_VISIBLE_DEVICES
        would; their links follow them. Indices must exist (callers say which do not)."""
        by_index = {g.index: g for g in self.gpus}
        new = {old: pos for pos, old in enumerate(indices)}
        gpus = tuple(replace(by_index[old], index=pos) for pos, old in enumerate(indices))
        links = tuple(sorted((min(new[a], new[b]), max(new[a], new[b]), kind)
                             for a, b, kind in self.links if a in new and b in new))
        return replace(self, gpus=gpus, links=links)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cuda"] = self.cuda
        data["links"] = [list(link) for link in self.links]
        data["nvlink_islands"] = self.nvlink_islands()  # derived, like "cuda": from_dict ignores both
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HostResources":
        known = {f.name for f in fields(GpuInfo)}  # a newer worker's extra GPU fields are skipped, not fatal
        gpus = tuple(GpuInfo(**{k: v for k, v in g.items() if k in known}) for g in data.get("gpus", ()))
        return cls(
            hostname=data["hostname"],
            cores=int(data["cores"]),
            ram_total_gib=float(data["ram_total_gib"]),
            ram_available_gib=float(data["ram_available_gib"]),
            gpus=gpus,
            cuda_driver_version=data.get("cuda_driver_version"),
            simulated=bool(data.get("simulated", False)),
            notes=tuple(data.get("notes", ())),
            links=tuple((int(a), int(b), str(kind)) for a, b, kind in data.get("links", ())),  # absent in old records
        )
