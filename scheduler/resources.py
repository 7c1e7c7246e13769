"""What a host offers, as plain frozen data.

The worker's probe (``worker.probe``) or a declared host profile
(``worker.host_profile``) produces a :class:`HostResources`; the pure matching rule
(``scheduler.matching``), the claim, ``fleet probe`` and ``fleet status`` read it.
It lives in ``scheduler`` so that matching never imports the worker package.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

GIB = 1024**3


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
    def ledger_key(self) -> str:
        """The GPU's name in the host ledger: its UUID where known (stable whatever
        CUDA_VISIBLE_DEVICES a worker runs with), else its NVML or visible index."""
        return self.uuid or f"gpu{self.nvml_index if self.nvml_index is not None else self.index}"


@dataclass(frozen=True)
class HostResources:
    """Capacity of one host as one worker sees it."""

    hostname: str
    cores: int
    ram_total_gib: float
    ram_available_gib: float
    gpus: tuple[GpuInfo, ...] = ()
    cuda_driver_version: str | None = None
    simulated: bool = False  # from --host-profile rather than a real probe
    notes: tuple[str, ...] = field(default=())  # one line per degraded probe step

    @property
    def cuda(self) -> bool:
        return bool(self.gpus)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cuda"] = self.cuda
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HostResources":
        gpus = tuple(GpuInfo(**g) for g in data.get("gpus", ()))
        return cls(
            hostname=data["hostname"],
            cores=int(data["cores"]),
            ram_total_gib=float(data["ram_total_gib"]),
            ram_available_gib=float(data["ram_available_gib"]),
            gpus=gpus,
            cuda_driver_version=data.get("cuda_driver_version"),
            simulated=bool(data.get("simulated", False)),
            notes=tuple(data.get("notes", ())),
        )
