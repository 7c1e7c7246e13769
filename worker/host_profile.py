"""Declared hosts (``--host-profile FILE.toml``) for simulation, tests and the demo."""

from __future__ import annotations

import os
import tomllib

from scheduler.errors import ProbeError
from scheduler.resources import GpuInfo, HostResources


def load_host_profile(path: str | os.PathLike) -> HostResources:
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ProbeError(f"{path}: host profile not found; pass an existing --host-profile file") from None
    except tomllib.TOMLDecodeError as err:
        raise ProbeError(f"{path}: invalid TOML: {err}") from None
    gpus = tuple(GpuInfo(index=i, name=g.get("name", f"gpu{i}"), vram_total_gib=float(g["vram_gib"]),
                         vram_free_gib=float(g.get("vram_free_gib", g["vram_gib"])), uuid=g.get("uuid", ""))
                 for i, g in enumerate(data.get("gpus", [])))
    ram = float(data["ram_gib"])
    return HostResources(hostname=data["hostname"], cores=int(data["cores"]), ram_total_gib=ram,
                         ram_available_gib=float(data.get("ram_available_gib", ram)), gpus=gpus, simulated=True)
