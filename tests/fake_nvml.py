"""A fake NVML written for fleet's tests: pynvml's function names, real pynvml error classes.

No GPU exists on the machines that run these tests, so this stands in for the
driver: each fake GPU is described by a FakeGpu, and any call can be made to
raise the NVMLError a real driver would (NOT_SUPPORTED on one device, no driver,
no library). Topology follows the driver's rules: NVLink peers are found through
each link's remote PCI bus id (a GPU's, or an NVSwitch's), a card without NVLink
answers NOT_SUPPORTED, a link index past the card's last INVALID_ARGUMENT, and the
common PCIe ancestor of two cards comes from their ``switch`` and ``numa``.
:func:`nvlink_box` and :func:`mig_a100` are the two machines the issue names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

GIB = 1024**3


@dataclass
class FakeGpu:
    name: str
    total_gib: float
    free_gib: float | None = None
    uuid: str = ""
    cc: tuple[int, int] = (8, 0)
    mig: int | None = 0  # None: the card does not support MIG (raises NOT_SUPPORTED)
    mig_devices: dict[str, float] = field(default_factory=dict)  # MIG UUID -> memory GiB
    mig_profiles: dict[str, str] = field(default_factory=dict)  # MIG UUID -> profile ("3g.40gb") in its name
    fail: dict[str, int] = field(default_factory=dict)  # nvml function name -> NVML_ERROR_* code
    no_memory_v2: bool = False
    # per NVLink: the peer GPU's index, an NVSwitch's bus id, or None for a link that is down;
    # None for the whole field: the card has no NVLink (NOT_SUPPORTED)
    nvlink: list[int | str | None] | None = None
    switch: int | None = None  # PCIe switch the card sits behind (None: straight on the host bridge)
    numa: int = 0  # CPU socket whose root complex holds it
    bus_id: str = ""


class FakeNvml:
    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2
    NVML_NVLINK_MAX_LINKS = pynvml.NVML_NVLINK_MAX_LINKS

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None, cuda_version: int = 12040):
        self.gpus = gpus
        self.init_error = init_error
        self.cuda_version = cuda_version
        self.initialised = 0
        for i, gpu in enumerate(gpus):
            gpu.uuid = gpu.uuid or f"GPU-{i:08d}-fake"
            gpu.bus_id = gpu.bus_id or f"00000000:{0x10 + 0x10 * i:02X}:00.0"  # NVML's spelling: upper-case hex
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, gpu: FakeGpu | None, fn: str) -> None:
        self.calls[fn] = self.calls.get(fn, 0) + 1
        if gpu is not None and fn in gpu.fail:
            raise pynvml.NVMLError(gpu.fail[fn])

    def nvmlInit(self):
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self):
        self.initialised -= 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for i, gpu in enumerate(self.gpus):
            if uuid in gpu.mig_devices:
                return ("mig", i, uuid)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def _gpu(self, handle) -> FakeGpu:
        return self.gpus[handle[1]]

    def nvmlDeviceGetName(self, handle):
        self._maybe_fail(self._gpu(handle), "nvmlDeviceGetName")
        gpu = self._gpu(handle)
        if handle[0] != "mig":
            return gpu.name
        profile = gpu.mig_profiles.get(handle[2])
        return f"{gpu.name} MIG {profile}" if profile else f"{gpu.name} MIG"

    def nvmlDeviceGetUUID(self, handle):
        self._maybe_fail(self._gpu(handle), "nvmlDeviceGetUUID")
        return handle[2] if handle[0] == "mig" else self._gpu(handle).uuid

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        gpu = self._gpu(handle)
        if version is not None and gpu.no_memory_v2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        self._maybe_fail(gpu, "nvmlDeviceGetMemoryInfo")
        total = gpu.mig_devices[handle[2]] if handle[0] == "mig" else gpu.total_gib
        free = total if gpu.free_gib is None or handle[0] == "mig" else gpu.free_gib
        return SimpleNamespace(total=int(total * GIB), free=int(free * GIB), used=int((total - free) * GIB))

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        self._maybe_fail(self._gpu(handle), "nvmlDeviceGetCudaComputeCapability")
        return self._gpu(handle).cc

    def nvmlDeviceGetMigMode(self, handle):
        gpu = self._gpu(handle)
        if gpu.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [gpu.mig, gpu.mig]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        gpu = self._gpu(handle)
        self._maybe_fail(gpu, "nvmlDeviceGetMaxMigDeviceCount")
        if gpu.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 7  # an A100's seven slices, whether or not instances fill them

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        gpu = self._gpu(handle)
        self._maybe_fail(gpu, "nvmlDeviceGetMigDeviceHandleByIndex")
        if index >= len(gpu.mig_devices):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return ("mig", handle[1], list(gpu.mig_devices)[index])

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle):
        if handle[0] != "mig":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return ("gpu", handle[1])

    def nvmlDeviceGetPciInfo(self, handle):
        self._maybe_fail(self._gpu(handle), "nvmlDeviceGetPciInfo")
        return SimpleNamespace(busId=self._gpu(handle).bus_id.encode())

    def _nvlink(self, handle, link, fn: str):
        gpu = self._gpu(handle)
        self._maybe_fail(gpu, fn)
        if gpu.nvlink is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if link >= len(gpu.nvlink):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.nvlink[link]

    def nvmlDeviceGetNvLinkState(self, handle, link):
        remote = self._nvlink(handle, link, "nvmlDeviceGetNvLinkState")
        return pynvml.NVML_FEATURE_DISABLED if remote is None else pynvml.NVML_FEATURE_ENABLED

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle, link):
        remote = self._nvlink(handle, link, "nvmlDeviceGetNvLinkRemotePciInfo")
        if remote is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimpleNamespace(busId=(remote if isinstance(remote, str) else self.gpus[remote].bus_id).encode())

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle, link):
        remote = self._nvlink(handle, link, "nvmlDeviceGetNvLinkRemoteDeviceType")
        return pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH if isinstance(remote, str) else pynvml.NVML_NVLINK_DEVICE_TYPE_GPU

    def nvmlDeviceGetTopologyCommonAncestor(self, one, other):
        a, b = self._gpu(one), self._gpu(other)
        self._maybe_fail(a, "nvmlDeviceGetTopologyCommonAncestor")
        if a is b:
            return pynvml.NVML_TOPOLOGY_INTERNAL
        if a.switch is not None and a.switch == b.switch:
            return pynvml.NVML_TOPOLOGY_SINGLE
        return pynvml.NVML_TOPOLOGY_NODE if a.numa == b.numa else pynvml.NVML_TOPOLOGY_SYSTEM

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda_version


def nvlink_box(**overrides) -> FakeNvml:
    """8x H100 80 GiB, NVLink-bridged in two islands of four (each GPU has a link to each of its
    three island peers, and six links down); one island per CPU socket, pairs behind a PCIe switch."""
    gpus = []
    for i in range(8):
        island = range(4 * (i // 4), 4 * (i // 4) + 4)
        links: list[int | str | None] = [p for p in island if p != i] + [None] * 6
        gpus.append(FakeGpu("NVIDIA H100 80GB HBM3", 80, cc=(9, 0), nvlink=links, switch=i // 2, numa=i // 4,
                            **overrides))
    return FakeNvml(gpus)


def mig_a100() -> FakeNvml:
    """An A100 40 GiB split into a 3g.20gb and two 1g.5gb MIG instances, beside a whole one."""
    return FakeNvml([
        FakeGpu("NVIDIA A100-SXM4-40GB", 40, mig=1,
                mig_devices={"MIG-11111111-aaaa": 20, "MIG-22222222-bbbb": 5, "MIG-33333333-cccc": 5},
                mig_profiles={"MIG-11111111-aaaa": "3g.20gb", "MIG-22222222-bbbb": "1g.5gb",
                              "MIG-33333333-cccc": "1g.5gb"}),
        FakeGpu("NVIDIA A100-SXM4-40GB", 40)])
