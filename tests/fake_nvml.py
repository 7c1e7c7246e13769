"""A fake NVML written for fleet's tests: pynvml's function names, real pynvml error classes.

No GPU exists on the machines that run these tests, so this stands in for the
driver: each fake GPU is described by a FakeGpu, and any call can be made to
raise the NVMLError a real driver would (NOT_SUPPORTED on one device, no driver,
no library).
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
    fail: dict[str, int] = field(default_factory=dict)  # nvml function name -> NVML_ERROR_* code
    no_memory_v2: bool = False


class FakeNvml:
    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None, cuda_version: int = 12040):
        self.gpus = gpus
        self.init_error = init_error
        self.cuda_version = cuda_version
        self.initialised = 0
        for i, gpu in enumerate(gpus):
            gpu.uuid = gpu.uuid or f"GPU-{i:08d}-fake"

    def _maybe_fail(self, gpu: FakeGpu | None, fn: str) -> None:
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
        return f"{gpu.name} MIG" if handle[0] == "mig" else gpu.name

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

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda_version
