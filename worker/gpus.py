"""GPUs through NVML, seen the way CUDA will show them to a job.

NVML ignores ``CUDA_VISIBLE_DEVICES``; CUDA does not. So the mapping from what the
worker was given (indices, ``GPU-`` UUIDs, ``MIG-`` UUIDs; ``""`` or ``-1`` for
none; parsing stops at the first invalid entry, as CUDA's does) to NVML devices
is ours. Every NVML failure degrades: a missing library or driver means "no
CUDA"; a call a device does not support leaves that field unknown. Each
degradation is one note, never an exception.
"""

from __future__ import annotations

from typing import Any, Mapping

from scheduler.resources import GIB, GpuInfo


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_visible(spec: str | None, count: int, uuids: list[str]) -> list[int | str] | None:
    """The visible devices in CUDA's order, as NVML indices or MIG UUIDs; None means all."""
    if spec is None:
        return None
    entries = [e.strip() for e in spec.split(",")]
    visible: list[int | str] = []
    for entry in entries:
        if entry == "" or entry.startswith("-"):
            break  # "" and "-1" hide every GPU; a negative entry ends the list for CUDA too
        if entry.isdigit():
            index = int(entry)
            if index >= count:
                break
            visible.append(index)
        elif entry.startswith("MIG-"):
            visible.append(entry)
        elif entry.startswith("GPU-"):
            matches = [i for i, u in enumerate(uuids) if u.startswith(entry)]
            if len(matches) != 1:
                break
            visible.append(matches[0])
        else:
            break
    return visible


class _Prober:
    def __init__(self, nvml: Any, notes: list[str]):
        self.nvml = nvml
        self.notes = notes

    def call(self, what: str, fn, *args, **kwargs):
        """An NVML call whose failure makes one field unknown (with one note) rather than an error."""
        try:
            return fn(*args, **kwargs)
        except self.nvml.NVMLError as err:
            self.notes.append(f"{what}: {err}")
            return None

    def memory(self, handle, label: str):
        """Memory info v2 (reserved memory counted as used) where the driver has it, else v1."""
        version = getattr(self.nvml, "nvmlMemory_v2", None)
        if version is not None:
            try:
                return self.nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            except self.nvml.NVMLError:
                pass  # older drivers: v1 below
            except TypeError:
                pass
        return self.call(f"{label}: memory info", self.nvml.nvmlDeviceGetMemoryInfo, handle)

    def device(self, position: int, handle, nvml_index: int | None, label: str) -> GpuInfo | None:
        mem = self.memory(handle, label)
        if mem is None:
            self.notes.append(f"{label}: skipped, its memory size is unknown")
            return None
        name = self.call(f"{label}: name", self.nvml.nvmlDeviceGetName, handle)
        uuid = self.call(f"{label}: uuid", self.nvml.nvmlDeviceGetUUID, handle)
        cc = self.call(f"{label}: compute capability", self.nvml.nvmlDeviceGetCudaComputeCapability, handle)
        mig = None
        try:
            current, _pending = self.nvml.nvmlDeviceGetMigMode(handle)
            mig = bool(current)
        except self.nvml.NVMLError:
            mig = None  # NOT_SUPPORTED on pre-Ampere cards is normal, not worth a note
        return GpuInfo(index=position, name=_text(name) if name is not None else "unknown GPU",
                       vram_total_gib=mem.total / GIB, vram_free_gib=mem.free / GIB, vram_used_gib=mem.used / GIB,
                       uuid=_text(uuid) if uuid is not None else "",
                       compute_capability=f"{cc[0]}.{cc[1]}" if cc else None, mig_mode=mig,
                       nvml_index=nvml_index)


def probe_gpus(nvml: Any, environ: Mapping[str, str], notes: list[str]) -> tuple[tuple[GpuInfo, ...], str | None]:
    """Visible GPUs and the CUDA driver version; ``((), None)`` with a note when there is no CUDA."""
    if nvml is None:
        import pynvml as nvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        notes.append(f"no CUDA: NVML unavailable ({err})")
        return (), None
    try:
        prober = _Prober(nvml, notes)
        count = prober.call("device count", nvml.nvmlDeviceGetCount) or 0
        handles = [prober.call(f"GPU {i}: handle", nvml.nvmlDeviceGetHandleByIndex, i) for i in range(count)]
        uuids = [(_text(prober.call(f"GPU {i}: uuid", nvml.nvmlDeviceGetUUID, h)) if h is not None else "")
                 for i, h in enumerate(handles)]
        visible = parse_visible(environ.get("CUDA_VISIBLE_DEVICES"), count, uuids)
        if visible is None:
            visible = list(range(count))
        elif not visible:
            notes.append(f"CUDA_VISIBLE_DEVICES={environ.get('CUDA_VISIBLE_DEVICES')!r} hides every GPU")
        gpus = []
        for entry in visible:
            if isinstance(entry, str):  # a MIG instance: its own memory, addressed by its UUID
                handle = prober.call(f"{entry}: handle", nvml.nvmlDeviceGetHandleByUUID, entry)
                nvml_index = None
                label = entry
            else:
                handle, nvml_index, label = handles[entry], entry, f"GPU {entry}"
            if handle is None:
                continue
            gpu = prober.device(len(gpus), handle, nvml_index, label)
            if gpu is not None:
                gpus.append(gpu)
        version = prober.call("CUDA driver version", nvml.nvmlSystemGetCudaDriverVersion)
        driver = f"{version // 1000}.{(version % 1000) // 10}" if isinstance(version, int) and version else None
        return tuple(gpus), driver
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as err:
            notes.append(f"NVML shutdown: {err}")
