"""GPUs through NVML, seen the way CUDA will show them to a job.

NVML ignores ``CUDA_VISIBLE_DEVICES``; CUDA does not. So the mapping from what the
worker was given (indices, ``GPU-`` UUIDs, ``MIG-`` UUIDs; ``""`` or ``-1`` for
none; parsing stops at the first invalid entry, as CUDA's does) to NVML devices
is ours. With no ``CUDA_VISIBLE_DEVICES``, a card in MIG mode is not itself a
device: each of its MIG instances is one, with its own memory and ``MIG-`` UUID
(the parent's compute capability), as CUDA lists them. Every NVML failure
degrades: a missing library or driver means "no CUDA"; a call a device does not
support leaves that field unknown. Each degradation is one note, never an
exception. How the GPUs are linked comes from ``worker/topology.py``.
"""

from __future__ import annotations

from typing import Any, Mapping

from scheduler.resources import GIB, GpuInfo

from .topology import probe_links

Links = tuple[tuple[int, int, str], ...]
_NOT_FOUND = 6  # NVML_ERROR_NOT_FOUND


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

    def basics(self, handle, label: str) -> tuple[Any, str | None, str] | None:
        """Memory, name and UUID; None (with a note) for a device whose memory is unknowable."""
        mem = self.memory(handle, label)
        if mem is None:
            self.notes.append(f"{label}: skipped, its memory size is unknown")
            return None
        name = self.call(f"{label}: name", self.nvml.nvmlDeviceGetName, handle)
        uuid = self.call(f"{label}: uuid", self.nvml.nvmlDeviceGetUUID, handle)
        return mem, _text(name) if name is not None else None, _text(uuid) if uuid is not None else ""

    def device(self, position: int, handle, nvml_index: int | None, label: str) -> GpuInfo | None:
        basics = self.basics(handle, label)
        if basics is None:
            return None
        mem, name, uuid = basics
        return GpuInfo(index=position, name=name or "unknown GPU", vram_total_gib=mem.total / GIB,
                       vram_free_gib=mem.free / GIB, vram_used_gib=mem.used / GIB, uuid=uuid,
                       compute_capability=self.capability(handle, label), mig_mode=self.mig_mode(handle),
                       nvml_index=nvml_index)

    def capability(self, handle, label: str) -> str | None:
        cc = self.call(f"{label}: compute capability", self.nvml.nvmlDeviceGetCudaComputeCapability, handle)
        return f"{cc[0]}.{cc[1]}" if cc else None

    def mig_mode(self, handle) -> bool | None:
        try:
            current, _pending = self.nvml.nvmlDeviceGetMigMode(handle)
            return bool(current)
        except self.nvml.NVMLError:
            return None  # NOT_SUPPORTED on pre-Ampere cards is normal, not worth a note

    def mig_instance(self, position: int, handle, parent, label: str, uuid_given: str = "") -> GpuInfo | None:
        """One MIG instance as a GPU: its memory and UUID (``uuid_given``: the one
        CUDA_VISIBLE_DEVICES named), its parent's capability (and name, where NVML has
        none for the instance). None (with a note) if it cannot be addressed."""
        basics = self.basics(handle, label)
        if basics is None:
            return None
        mem, name, uuid = basics
        uuid = uuid or uuid_given
        if not uuid.startswith("MIG-"):
            self.notes.append(f"{label}: skipped, its MIG UUID is unknown (CUDA_VISIBLE_DEVICES needs it)")
            return None
        if name is None and parent is not None:
            parent_name = self.call(f"{label}: parent name", self.nvml.nvmlDeviceGetName, parent)
            name = _text(parent_name) if parent_name is not None else None
        return GpuInfo(index=position, name=name or "unknown GPU", vram_total_gib=mem.total / GIB,
                       vram_free_gib=mem.free / GIB, vram_used_gib=mem.used / GIB, uuid=uuid,
                       compute_capability=self.capability(parent if parent is not None else handle, label),
                       mig_mode=True)

    def mig_instances(self, first: int, parent, label: str) -> list[GpuInfo]:
        """Every MIG instance of a card in MIG mode, numbered from ``first``; empty slots are normal."""
        count = self.call(f"{label}: MIG device count", self.nvml.nvmlDeviceGetMaxMigDeviceCount, parent) or 0
        found = []
        for slot in range(count):
            try:
                handle = self.nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
            except self.nvml.NVMLError as err:
                if getattr(err, "value", None) != _NOT_FOUND:  # NOT_FOUND: no instance in this slot
                    self.notes.append(f"{label} MIG {slot}: handle: {err}")
                continue
            gpu = self.mig_instance(first + len(found), handle, parent, f"{label} MIG {slot}")
            if gpu is not None:
                found.append(gpu)
        if not found:
            self.notes.append(f"{label}: MIG mode is on but it has no MIG instances; nothing can run on it")
        return found

    def mig_parent(self, handle, label: str):
        fn = getattr(self.nvml, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", None)
        return self.call(f"{label}: parent GPU", fn, handle) if fn is not None else None


def probe_gpus(nvml: Any, environ: Mapping[str, str], notes: list[str],
               with_links: bool = True) -> tuple[tuple[GpuInfo, ...], str | None, Links]:
    """Visible GPUs, the CUDA driver version and the GPUs' links (``HostResources.links``;
    ``()`` without ``with_links``: a re-probe for free memory keeps the first probe's links,
    which do not change, instead of repeating a few hundred NVML calls on an 8-GPU box);
    ``((), None, ())`` with a note when there is no CUDA."""
    if nvml is None:
        import pynvml as nvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        notes.append(f"no CUDA: NVML unavailable ({err})")
        return (), None, ()
    try:
        prober = _Prober(nvml, notes)
        count = prober.call("device count", nvml.nvmlDeviceGetCount) or 0
        handles = [prober.call(f"GPU {i}: handle", nvml.nvmlDeviceGetHandleByIndex, i) for i in range(count)]
        uuids = [(_text(prober.call(f"GPU {i}: uuid", nvml.nvmlDeviceGetUUID, h)) if h is not None else "")
                 for i, h in enumerate(handles)]
        spec = environ.get("CUDA_VISIBLE_DEVICES")
        visible = parse_visible(spec, count, uuids)
        if visible is None:
            visible = list(range(count))
        elif not visible:
            notes.append(f"CUDA_VISIBLE_DEVICES={spec!r} hides every GPU")
        gpus: list[GpuInfo] = []
        physical: list[tuple[int, Any]] = []  # (visible index, handle) of whole cards, for their links
        for entry in visible:
            if isinstance(entry, str):  # a MIG instance named by its UUID
                handle = prober.call(f"{entry}: handle", nvml.nvmlDeviceGetHandleByUUID, entry)
                if handle is not None:
                    gpu = prober.mig_instance(len(gpus), handle, prober.mig_parent(handle, entry), entry, entry)
                    gpus += [gpu] if gpu is not None else []
                continue
            handle, label = handles[entry], f"GPU {entry}"
            if handle is None:
                continue
            if spec is None and prober.mig_mode(handle):
                gpus += prober.mig_instances(len(gpus), handle, label)
                continue
            gpu = prober.device(len(gpus), handle, entry, label)
            if gpu is not None:
                physical.append((gpu.index, handle))
                gpus.append(gpu)
        links = probe_links(nvml, physical, notes) if with_links else ()
        version = prober.call("CUDA driver version", nvml.nvmlSystemGetCudaDriverVersion)
        driver = f"{version // 1000}.{(version % 1000) // 10}" if isinstance(version, int) and version else None
        return tuple(gpus), driver, links
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as err:
            notes.append(f"NVML shutdown: {err}")
