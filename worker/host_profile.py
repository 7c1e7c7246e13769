"""Declared hosts (``--host-profile FILE.toml``) for simulation, tests and the demo.

Format (more optional keys: ``ram_available_gib``, ``description``; per GPU
``vram_free_gib``, ``uuid``, ``compute_capability``)::

    hostname = "bigbox"
    cuda = true
    cores = 32
    ram_gib = 256
    [[gpus]]
    name = "A100-SXM4-80GB"
    vram_gib = 80
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from typing import Any

import tomli_w

from scheduler.errors import ProbeError
from scheduler.names import HOST_RE
from scheduler.resources import GpuInfo, HostResources

TOP_KEYS = ("hostname", "cuda", "cores", "ram_gib", "ram_available_gib", "description", "gpus")
GPU_KEYS = ("name", "vram_gib", "vram_free_gib", "uuid", "compute_capability")


def _hint(key: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(choices)}"


def _number(path: str, where: str, value: Any, positive: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0) or value < 0:
        raise ProbeError(f"{path}: {where}: must be a {'positive' if positive else 'non-negative'} number, "
                         f"got {value!r}")
    return float(value)


def load_host_profile(path: str | os.PathLike) -> HostResources:
    """Read and validate a host profile; any problem is one ProbeError line naming file and field."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ProbeError(f"{path}: host profile not found; pass an existing --host-profile file") from None
    except tomllib.TOMLDecodeError as err:
        raise ProbeError(f"{path}: invalid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProbeError(f"{path}: cannot read host profile: {err}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise ProbeError(f"{path}: {key}: unknown key{_hint(key, TOP_KEYS)}")
    for key in ("hostname", "cuda", "cores", "ram_gib"):
        if key not in data:
            raise ProbeError(f"{path}: {key}: missing; a host profile needs hostname, cuda, cores and ram_gib")
    hostname = data["hostname"]
    if not isinstance(hostname, str) or not HOST_RE.fullmatch(hostname):
        raise ProbeError(f"{path}: hostname: must be 1-63 letters, digits, '_', '.' or '-', got {hostname!r}")
    if not isinstance(data["cuda"], bool):
        raise ProbeError(f"{path}: cuda: must be true or false, got {data['cuda']!r}")
    cores = data["cores"]
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise ProbeError(f"{path}: cores: must be a whole number >= 1, got {cores!r}")
    ram = _number(path, "ram_gib", data["ram_gib"])
    available = _number(path, "ram_available_gib", data.get("ram_available_gib", ram), positive=False)
    if available > ram:
        raise ProbeError(f"{path}: ram_available_gib: {available:g} exceeds ram_gib {ram:g}")
    raw_gpus = data.get("gpus", [])
    if not isinstance(raw_gpus, list) or not all(isinstance(g, dict) for g in raw_gpus):
        raise ProbeError(f"{path}: gpus: must be an array of tables ([[gpus]])")
    if data["cuda"] and not raw_gpus:
        raise ProbeError(f"{path}: cuda: true but no [[gpus]]; add one per GPU or set cuda = false")
    if not data["cuda"] and raw_gpus:
        raise ProbeError(f"{path}: cuda: false but {len(raw_gpus)} [[gpus]] declared; set cuda = true")
    gpus = []
    for i, gpu in enumerate(raw_gpus):
        where = f"gpus[{i}]"
        for key in gpu:
            if key not in GPU_KEYS:
                raise ProbeError(f"{path}: {where}.{key}: unknown key{_hint(key, GPU_KEYS)}")
        name = gpu.get("name")
        if not isinstance(name, str) or not name:
            raise ProbeError(f"{path}: {where}.name: must be a non-empty string")
        if "vram_gib" not in gpu:
            raise ProbeError(f"{path}: {where}.vram_gib: missing; give the card's memory in GiB")
        total = _number(path, f"{where}.vram_gib", gpu["vram_gib"])
        free = _number(path, f"{where}.vram_free_gib", gpu.get("vram_free_gib", total), positive=False)
        if free > total:
            raise ProbeError(f"{path}: {where}.vram_free_gib: {free:g} exceeds vram_gib {total:g}")
        cc = gpu.get("compute_capability")
        if cc is not None and not (isinstance(cc, str) and re.fullmatch(r"\d+\.\d+", cc)):
            raise ProbeError(f"{path}: {where}.compute_capability: must look like \"8.0\", got {cc!r}")
        gpus.append(GpuInfo(index=i, name=name, vram_total_gib=total, vram_free_gib=free, uuid=str(gpu.get("uuid", "")),
                            vram_used_gib=total - free, compute_capability=cc, nvml_index=i))
    return HostResources(hostname=hostname, cores=cores, ram_total_gib=ram, ram_available_gib=available,
                         gpus=tuple(gpus), simulated=True)


def dump_host_profile(host: HostResources) -> str:
    """A probed host as a profile, so a real box can be replayed in simulation."""
    data: dict[str, Any] = {"hostname": host.hostname, "cuda": host.cuda, "cores": host.cores,
                            "ram_gib": round(host.ram_total_gib, 3),
                            "ram_available_gib": round(host.ram_available_gib, 3)}
    if host.gpus:
        data["gpus"] = []
        for g in host.gpus:
            entry: dict[str, Any] = {"name": g.name, "vram_gib": round(g.vram_total_gib, 3),
                                     "vram_free_gib": round(g.vram_free_gib, 3)}
            if g.uuid:
                entry["uuid"] = g.uuid
            if g.compute_capability:
                entry["compute_capability"] = g.compute_capability
            data["gpus"].append(entry)
    return tomli_w.dumps(data)
