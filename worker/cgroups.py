"""CPU and memory limits from cgroups (v2 and v1).

Workers run inside systemd slices and containers, where psutil sees the whole
machine; a worker that trusted psutil there would claim jobs its cgroup then
OOM-kills or throttles. The effective limit is the lowest one on the path from
the process's cgroup up to the root.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

UNLIMITED_V1 = 1 << 60  # v1 reports "no limit" as a huge page-aligned number


@dataclass(frozen=True)
class Limits:
    cpus: float | None = None  # cores' worth of CPU time (quota / period)
    memory_bytes: int | None = None
    memory_used_bytes: int | None = None


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _cgroup_paths(proc_self_cgroup: str) -> tuple[str | None, dict[str, str]]:
    """The v2 path ("0::/x") and v1 paths per controller ("4:memory:/x")."""
    text = _read(proc_self_cgroup) or ""
    v2, v1 = None, {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        for controller in parts[1].split(","):
            if controller:
                v1[controller] = parts[2]
    return v2, v1


def _ancestors(root: str, rel: str) -> list[str]:
    rel = rel.strip("/")
    parts = rel.split("/") if rel else []
    return [os.path.join(root, *parts[:i]) for i in range(len(parts), -1, -1)]


def read_limits(cgroup_root: str = "/sys/fs/cgroup", proc_self_cgroup: str = "/proc/self/cgroup") -> Limits:
    v2, v1 = _cgroup_paths(proc_self_cgroup)
    cpus, mem, used = None, None, None
    if v2 is not None and os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        for directory in _ancestors(cgroup_root, v2):
            cpu_max = _read(os.path.join(directory, "cpu.max"))
            if cpu_max and not cpu_max.startswith("max"):
                quota, _, period = cpu_max.partition(" ")
                value = int(quota) / int(period or 100000)
                cpus = value if cpus is None else min(cpus, value)
            mem_max = _read(os.path.join(directory, "memory.max"))
            if mem_max and mem_max != "max" and mem_max.isdigit():
                if mem is None or int(mem_max) < mem:
                    mem = int(mem_max)
                    current = _read(os.path.join(directory, "memory.current"))
                    used = int(current) if current and current.isdigit() else None
        return Limits(cpus, mem, used)
    rel = v1.get("cpu")
    if rel is not None:
        mount = next((os.path.join(cgroup_root, m) for m in ("cpu,cpuacct", "cpu")
                      if os.path.isdir(os.path.join(cgroup_root, m))), None)
        for directory in _ancestors(mount, rel) if mount else []:
            quota = _read(os.path.join(directory, "cpu.cfs_quota_us"))
            period = _read(os.path.join(directory, "cpu.cfs_period_us"))
            if quota and period and quota.isdigit() and period.isdigit() and int(quota) > 0:
                value = int(quota) / int(period)
                cpus = value if cpus is None else min(cpus, value)
    rel = v1.get("memory")
    if rel is not None:
        for directory in _ancestors(os.path.join(cgroup_root, "memory"), rel):
            limit = _read(os.path.join(directory, "memory.limit_in_bytes"))
            if limit and limit.isdigit() and int(limit) < UNLIMITED_V1 and (mem is None or int(limit) < mem):
                mem = int(limit)
                usage = _read(os.path.join(directory, "memory.usage_in_bytes"))
                used = int(usage) if usage and usage.isdigit() else None
    return Limits(cpus, mem, used)


def effective_cores(affinity: int, limits: Limits) -> int:
    """Cores a worker may count on: its CPU affinity, capped by the cgroup quota (rounded up), at least 1."""
    cores = affinity
    if limits.cpus is not None:
        cores = min(cores, math.ceil(limits.cpus - 1e-9))
    return max(1, cores)
