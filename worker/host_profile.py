"""Declared hosts (``--host-profile FILE.toml``) for simulation, tests and the demo.

Format (more optional keys: ``ram_available_gib``, ``description``; per GPU
``vram_free_gib``, ``uuid`` (``GPU-...`` or ``MIG-...``), ``compute_capability``
(``8.0`` or ``"8.0"``); top-level ``nvlink``)::

    hostname = "bigbox"
    cuda = true
    cores = 32
    ram_gib = 256
    nvlink = [[0, 1]]  # islands: every pair of GPUs in one island shares NVLink
    [[gpus]]
    name = "A100-SXM4-80GB"
    vram_gib = 80
    compute_capability = 8.0
    [[gpus]]
    name = "A100-SXM4-80GB"
    vram_gib = 80

Islands are disjoint lists of ``[[gpus]]`` positions, so a profile gives the same
``HostResources.links`` a probe would for NVLink; what a profile does not declare
(PCIe distance) stays unknown, and no pair is guessed.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from itertools import combinations
from typing import Any, Sequence

import tomli_w

from scheduler.errors import ProbeError
from scheduler.names import HOST_RE
from scheduler.resources import GpuInfo, HostResources

TOP_KEYS = ("hostname", "cuda", "cores", "ram_gib", "ram_available_gib", "description", "gpus", "nvlink")
GPU_KEYS = ("name", "vram_gib", "vram_free_gib", "uuid", "compute_capability")
# What CUDA_VISIBLE_DEVICES and the host ledger accept: no commas, spaces or control characters.
UUID_RE = re.compile(r"(?:GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/-]{0,95}")
CC_RE = re.compile(r"([1-9]|1[0-9])\.([0-9])")  # 1.0 (Tesla) .. 19.9: room for cards to come, none for typos


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
        uuid = gpu.get("uuid", "")
        if uuid != "" and not (isinstance(uuid, str) and UUID_RE.fullmatch(uuid)):
            raise ProbeError(f"{path}: {where}.uuid: must be a GPU-... or MIG-... UUID as nvidia-smi -L prints it, "
                             f"got {uuid!r}")
        if uuid and uuid in (g.uuid for g in gpus):
            raise ProbeError(f"{path}: {where}.uuid: {uuid} is already gpus[{[g.uuid for g in gpus].index(uuid)}]'s; "
                             f"each GPU has its own")
        cc = _capability(path, f"{where}.compute_capability", gpu.get("compute_capability"))
        gpus.append(GpuInfo(index=i, name=name, vram_total_gib=total, vram_free_gib=free, uuid=uuid,
                            vram_used_gib=total - free, compute_capability=cc, nvml_index=i))
    links = _nvlink_links(path, data.get("nvlink", []), len(gpus))
    return HostResources(hostname=hostname, cores=cores, ram_total_gib=ram, ram_available_gib=available,
                         gpus=tuple(gpus), simulated=True, links=links)


def _capability(path: str, where: str, value: Any) -> str | None:
    """``8.0``, ``8`` or ``"8.0"`` as the probe's "8.0"; anything else is an error naming the field."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = f"{value}.0" if isinstance(value, int) else repr(value)
    else:
        text = value if isinstance(value, str) else ""
    match = CC_RE.fullmatch(text)
    if not match:
        raise ProbeError(f"{path}: {where}: must be the card's compute capability, 1.0 to 19.9 (8.0 for an A100, "
                         f"\"8.9\" for an RTX 4090), got {value!r}")
    return f"{match.group(1)}.{match.group(2)}"


def _nvlink_links(path: str, islands: Any, count: int) -> tuple[tuple[int, int, str], ...]:
    """``nvlink = [[0, 1], [2, 3]]`` as links: every pair within an island is "nvlink"."""
    if not isinstance(islands, list) or not all(isinstance(isl, list) for isl in islands):
        raise ProbeError(f"{path}: nvlink: must be a list of islands of [[gpus]] positions, e.g. [[0, 1], [2, 3]]")
    seen: dict[int, int] = {}
    links = []
    for k, island in enumerate(islands):
        where = f"nvlink[{k}]"
        if len(island) < 2:
            raise ProbeError(f"{path}: {where}: an island needs two or more GPUs, got {island!r}")
        for i in island:
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < count:
                raise ProbeError(f"{path}: {where}: {i!r} is not a GPU of this profile ("
                                 f"{_positions(count)})")
            if i in seen:
                raise ProbeError(f"{path}: {where}: GPU {i} is already in nvlink[{seen[i]}]; islands are disjoint, "
                                 f"so merge the two if all their GPUs share NVLink")
            seen[i] = k
        links += [(min(a, b), max(a, b), "nvlink") for a, b in combinations(island, 2)]
    return tuple(sorted(links))


def _positions(count: int) -> str:
    """How a one-line error names a profile's GPUs: "it declares 8 [[gpus]], 0-7"."""
    if count == 0:
        return "it declares no [[gpus]]"
    return f"it declares {count} [[gpus]], {'0' if count == 1 else f'0-{count - 1}'}"


def select_gpus(host: HostResources, indices: Sequence[int], path: str | os.PathLike) -> HostResources:
    """A profile's host with only ``--gpu``'s GPUs, renumbered 0.. in the order given, as a worker
    started with CUDA_VISIBLE_DEVICES set to them sees them (links and UUIDs follow)."""
    for n, i in enumerate(indices):
        if i not in range(len(host.gpus)):
            raise ProbeError(f"--gpu {i}: {os.fspath(path)} has no GPU {i} ("
                             f"{_positions(len(host.gpus))})")
        if i in indices[:n]:
            raise ProbeError(f"--gpu {i}: given twice; name each GPU of {os.fspath(path)} once")
    return host.with_gpus(indices)


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
        islands = _cliques(host)
        if islands:
            data["nvlink"] = islands
    return tomli_w.dumps(data)


def _cliques(host: HostResources) -> list[list[int]]:
    """NVLink islands a profile can declare: those in which every pair is linked. A partial mesh
    (each GPU linked to some others, as on a DGX-1) is left out rather than overstated."""
    positions = {g.index: pos for pos, g in enumerate(host.gpus)}
    return [[positions[i] for i in island] for island in host.nvlink_islands()
            if all(host.link(a, b) == "nvlink" for a, b in combinations(island, 2))]
