"""What this box offers, probed for real: NVML for GPUs, psutil and cgroups for CPU and RAM.

The probe never fails for hardware reasons: no NVML (every machine without an
NVIDIA driver) is "no CUDA", an unsupported call is an unknown field, and each
such step leaves one line in ``HostResources.notes`` (logged once). It raises only
for a host name manifests could never match.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Mapping, Sequence

import psutil

from scheduler.errors import ProbeError
from scheduler.names import HOST_RE
from scheduler.resources import GIB, HostResources

from .cgroups import effective_cores, read_limits
from .gpus import probe_gpus

log = logging.getLogger("fleet.probe")


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def probe_host(host_name: str | None = None, *, nvml: Any = None, gpu_indices: Sequence[int] | None = None,
               environ: Mapping[str, str] | None = None, cgroup_root: str = "/sys/fs/cgroup",
               proc_self_cgroup: str = "/proc/self/cgroup", with_links: bool = True) -> HostResources:
    """Describe this host as one worker sees it (``gpu_indices``: its ``--gpu`` choices;
    ``with_links``: see :func:`worker.gpus.probe_gpus`)."""
    environ = os.environ if environ is None else environ
    name = host_name or short_hostname()
    if not HOST_RE.fullmatch(name):
        raise ProbeError(f"host name {name!r} cannot match a manifest's [hosts]; pass --host-name with 1-63 "
                         f"letters, digits, '_', '.' or '-'")
    notes: list[str] = []
    gpus, driver, links = probe_gpus(nvml, environ, notes, with_links=with_links)
    if gpu_indices:
        missing = sorted(set(gpu_indices) - {g.index for g in gpus})
        if missing:
            raise ProbeError(f"--gpu {missing[0]}: no such visible GPU (this worker sees "
                             f"{len(gpus)}); check CUDA_VISIBLE_DEVICES and nvidia-smi")
        gpus = tuple(g for g in gpus if g.index in set(gpu_indices))
        links = tuple(link for link in links if {link[0], link[1]} <= set(gpu_indices))
    limits = read_limits(cgroup_root, proc_self_cgroup)
    vm = psutil.virtual_memory()
    total, available = vm.total, vm.available
    if limits.memory_bytes is not None and limits.memory_bytes < total:
        notes.append(f"cgroup memory limit {limits.memory_bytes / GIB:.1f} GiB (machine has {total / GIB:.1f})")
        total = limits.memory_bytes
        available = min(available, max(0, limits.memory_bytes - (limits.memory_used_bytes or 0)))
    try:
        affinity = len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error):
        affinity = os.cpu_count() or 1
    cores = effective_cores(affinity, limits)
    if cores < affinity:
        notes.append(f"cgroup CPU quota {limits.cpus:g} cores (affinity allows {affinity})")
    for note in notes:
        log.info("probe: %s", note)
    return HostResources(hostname=name, cores=cores, ram_total_gib=total / GIB, ram_available_gib=available / GIB,
                         gpus=gpus, cuda_driver_version=driver, notes=tuple(notes), links=links)
