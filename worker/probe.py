"""What this box offers, probed for real: NVML for GPUs, psutil and cgroups for CPU and RAM."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Mapping, Sequence

import psutil

from scheduler.resources import GIB, GpuInfo, HostResources

log = logging.getLogger("fleet.probe")


def probe_host(host_name: str | None = None, *, nvml: Any = None, gpu_indices: Sequence[int] | None = None,
               environ: Mapping[str, str] | None = None) -> HostResources:
    environ = os.environ if environ is None else environ
    notes: list[str] = []
    gpus, driver = _probe_gpus(nvml, environ, notes)
    if gpu_indices:
        gpus = tuple(g for g in gpus if g.index in set(gpu_indices))
    vm = psutil.virtual_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for note in notes:
        log.info("%s", note)
    return HostResources(hostname=host_name or socket.gethostname().split(".")[0], cores=max(1, cores),
                         ram_total_gib=vm.total / GIB, ram_available_gib=vm.available / GIB, gpus=gpus,
                         cuda_driver_version=driver, notes=tuple(notes))


def _probe_gpus(nvml: Any, environ: Mapping[str, str], notes: list[str]) -> tuple[tuple[GpuInfo, ...], str | None]:
    if nvml is None:
        import pynvml as nvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        notes.append(f"no CUDA: NVML unavailable ({err})")
        return (), None
    try:
        count = nvml.nvmlDeviceGetCount()
        gpus = []
        for i in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append(GpuInfo(index=i, name=name.decode() if isinstance(name, bytes) else name,
                                vram_total_gib=mem.total / GIB, vram_free_gib=mem.free / GIB,
                                vram_used_gib=mem.used / GIB, nvml_index=i))
        return tuple(gpus), None
    finally:
        nvml.nvmlShutdown()
