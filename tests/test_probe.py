"""The hardware probe against a fake NVML (several GPUs, MIG, busy cards, unsupported calls, no
library) and fake cgroup trees, plus the real pynvml path on this GPU-less machine."""

from __future__ import annotations

import pynvml
import pytest
from fake_nvml import FakeGpu, FakeNvml

from scheduler.errors import ProbeError
from worker.cgroups import effective_cores, read_limits
from worker.gpus import parse_visible
from worker.probe import probe_host


def fleet_of_gpus():
    return FakeNvml([FakeGpu("A100-SXM4-80GB", 80), FakeGpu("A100-SXM4-80GB", 80, free_gib=30.5),
                     FakeGpu("RTX 4090", 24, cc=(8, 9), mig=None)])


def probe(nvml, visible=None, **kw):
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    return probe_host("box", nvml=nvml, environ=environ, **kw)


def test_several_gpus_with_a_busy_one():
    nvml = fleet_of_gpus()
    host = probe(nvml)
    assert [(g.index, g.name, g.vram_total_gib, g.vram_free_gib) for g in host.gpus] == [
        (0, "A100-SXM4-80GB", 80, 80), (1, "A100-SXM4-80GB", 80, 30.5), (2, "RTX 4090", 24, 24)]
    assert host.gpus[1].vram_used_gib == pytest.approx(49.5)
    assert host.gpus[2].compute_capability == "8.9" and host.gpus[2].mig_mode is None
    assert host.gpus[0].mig_mode is False and host.cuda_driver_version == "12.4"
    assert host.cuda and nvml.initialised == 0, "nvmlShutdown must follow nvmlInit"


def test_cuda_visible_devices_by_index_uuid_and_order():
    nvml = fleet_of_gpus()
    assert [g.nvml_index for g in probe(nvml, "2,0").gpus] == [2, 0]
    assert [g.index for g in probe(nvml, "2,0").gpus] == [0, 1]  # CUDA renumbers what it shows
    assert [g.nvml_index for g in probe(nvml, "GPU-00000001").gpus] == [1]  # UUID prefixes work
    assert [g.nvml_index for g in probe(nvml, "1,7,0").gpus] == [1]  # an invalid entry ends the list
    assert probe(nvml, "").gpus == () and probe(nvml, "-1").gpus == ()
    assert any("hides every GPU" in n for n in probe(nvml, "-1").notes)


def test_gpu_flag_restricts_and_rejects_unknown_indices():
    nvml = fleet_of_gpus()
    assert [g.index for g in probe(nvml, gpu_indices=[1]).gpus] == [1]
    with pytest.raises(ProbeError, match="--gpu 5: no such visible GPU"):
        probe(nvml, gpu_indices=[5])


def test_mig_instances_by_uuid():
    nvml = FakeNvml([FakeGpu("A100", 80, mig=1, mig_devices={"MIG-aaaa": 10, "MIG-bbbb": 20})])
    host = probe(nvml, "MIG-bbbb")
    assert [(g.name, g.vram_total_gib, g.uuid) for g in host.gpus] == [("A100 MIG", 20, "MIG-bbbb")]
    assert probe(nvml).gpus[0].mig_mode is True


def test_not_supported_calls_leave_fields_unknown_not_errors():
    nvml = FakeNvml([FakeGpu("Old", 12, mig=None, fail={"nvmlDeviceGetCudaComputeCapability": 3}),
                     FakeGpu("Weird", 16, fail={"nvmlDeviceGetMemoryInfo": 3}, no_memory_v2=True),
                     FakeGpu("NoV2", 8, no_memory_v2=True)])
    host = probe(nvml)
    assert [g.name for g in host.gpus] == ["Old", "NoV2"]  # a card whose memory is unknowable is skipped
    assert host.gpus[0].compute_capability is None and host.gpus[1].vram_total_gib == 8
    assert any("Weird" not in n and "GPU 1: skipped" in n for n in host.notes)


@pytest.mark.parametrize("code,words", [(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "Library Not Found"),
                                        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded")])
def test_missing_library_or_driver_is_no_cuda(code, words):
    host = probe(FakeNvml([FakeGpu("A100", 80)], init_error=code))
    assert host.gpus == () and not host.cuda
    assert len(host.notes) == 1 and "no CUDA" in host.notes[0] and words in host.notes[0]


def test_the_real_nvml_path_on_this_machine_degrades_to_no_cuda():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has a working NVML; the no-CUDA path is covered by the fake")
    host = probe_host("box")
    assert host.gpus == () and host.cores >= 1 and host.ram_total_gib > 0
    assert any("no CUDA" in n for n in host.notes)


def test_parse_visible_matches_cuda_semantics():
    uuids = ["GPU-aaa", "GPU-bbb"]
    assert parse_visible(None, 2, uuids) is None
    assert parse_visible("1,0", 2, uuids) == [1, 0]
    assert parse_visible("GPU-b", 2, uuids) == [1]
    assert parse_visible("GPU-", 2, uuids) == []  # ambiguous prefix ends the list
    assert parse_visible("0,foo,1", 2, uuids) == [0]


def write(tree, rel: str, text: str) -> None:
    path = tree / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limits_override_psutil(tmp_path):
    write(tmp_path, "cg/cgroup.controllers", "cpu memory")
    write(tmp_path, "cg/system.slice/fleet.service/cpu.max", "150000 100000")
    write(tmp_path, "cg/system.slice/fleet.service/memory.max", str(4 * 1024**3))
    write(tmp_path, "cg/system.slice/fleet.service/memory.current", str(1024**3))
    write(tmp_path, "cg/system.slice/memory.max", "max")
    write(tmp_path, "self", "0::/system.slice/fleet.service\n")
    limits = read_limits(str(tmp_path / "cg"), str(tmp_path / "self"))
    assert limits.cpus == 1.5 and limits.memory_bytes == 4 * 1024**3
    assert effective_cores(64, limits) == 2 and effective_cores(1, limits) == 1
    host = probe_host("box", nvml=FakeNvml([]), environ={}, cgroup_root=str(tmp_path / "cg"),
                      proc_self_cgroup=str(tmp_path / "self"))
    assert host.ram_total_gib == pytest.approx(4) and host.ram_available_gib <= 3 + 1e-9
    assert host.cores <= 2


def test_cgroup_v1_limits_and_unlimited(tmp_path):
    write(tmp_path, "cg/cpu,cpuacct/job/cpu.cfs_quota_us", "300000")
    write(tmp_path, "cg/cpu,cpuacct/job/cpu.cfs_period_us", "100000")
    write(tmp_path, "cg/memory/job/memory.limit_in_bytes", str(2 * 1024**3))
    write(tmp_path, "cg/memory/job/memory.usage_in_bytes", str(1024**3))
    write(tmp_path, "self", "4:memory:/job\n1:cpu,cpuacct:/job\n")
    limits = read_limits(str(tmp_path / "cg"), str(tmp_path / "self"))
    assert limits.cpus == 3 and limits.memory_bytes == 2 * 1024**3 and limits.memory_used_bytes == 1024**3
    write(tmp_path, "cg/memory/job/memory.limit_in_bytes", str(9223372036854771712))
    write(tmp_path, "cg/cpu,cpuacct/job/cpu.cfs_quota_us", "-1")
    assert read_limits(str(tmp_path / "cg"), str(tmp_path / "self")) == read_limits("/nonexistent", "/nonexistent")


def test_bad_host_name_is_a_clear_error():
    with pytest.raises(ProbeError, match="--host-name"):
        probe_host("bad name!", nvml=FakeNvml([]), environ={})
