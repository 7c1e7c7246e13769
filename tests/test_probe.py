"""The hardware probe against a fake NVML (several GPUs, MIG, busy cards, unsupported calls, no
library, NVLink and PCIe topology) and fake cgroup trees, plus the real pynvml path on this
GPU-less machine."""

from __future__ import annotations

import json

import pynvml
import pytest
from fake_nvml import FakeGpu, FakeNvml, mig_a100, nvlink_box

from scheduler.errors import ProbeError
from scheduler.resources import HostResources
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


def test_mig_instances_are_gpus_of_their_own_when_nothing_is_hidden():
    host = probe(mig_a100())
    assert [(g.index, g.name, g.vram_total_gib, g.uuid, g.compute_capability, g.mig_mode) for g in host.gpus] == [
        (0, "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 20, "MIG-11111111-aaaa", "8.0", True),
        (1, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 5, "MIG-22222222-bbbb", "8.0", True),
        (2, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 5, "MIG-33333333-cccc", "8.0", True),
        (3, "NVIDIA A100-SXM4-40GB", 40, "GPU-00000001-fake", "8.0", False)]  # the parent itself is not listed
    assert len({g.ledger_key for g in host.gpus}) == 4  # each instance is reserved on its own
    assert host.links == () and host.notes == ()  # MIG has no peer-to-peer path: no links, and nothing to note
    picked = probe(mig_a100(), "MIG-22222222-bbbb").gpus
    assert [(g.index, g.uuid, g.vram_total_gib, g.compute_capability) for g in picked] == [
        (0, "MIG-22222222-bbbb", 5, "8.0")]
    lost = mig_a100()
    lost.gpus[0].fail["nvmlDeviceGetMigDeviceHandleByIndex"] = pynvml.NVML_ERROR_GPU_IS_LOST
    assert any("MIG 0: handle" in n and "GPU is lost" in n for n in probe(lost).notes)  # said, not skipped silently


def test_a_mig_card_without_instances_offers_nothing_and_says_so():
    host = probe(FakeNvml([FakeGpu("A100", 40, mig=1)]))
    assert host.gpus == () and any("no MIG instances" in n for n in host.notes)


def test_an_nvlink_box_comes_out_as_two_islands_with_pcie_between_them():
    host = probe(nvlink_box())
    assert host.nvlink_islands() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert host.link(0, 3) == host.link(7, 4) == "nvlink"
    assert {host.link(a, b) for a in range(4) for b in range(4, 8)} == {"system"}  # across sockets, over PCIe
    assert len(host.links) == 28 and host.notes == ()
    assert {g.compute_capability for g in host.gpus} == {"9.0"}
    assert HostResources.from_dict(json.loads(host.to_json())) == host  # as workers publish it and status reads it


def test_links_follow_cuda_visible_devices_and_the_gpu_flag():
    host = probe(nvlink_box(), "5,0,4")  # CUDA renumbers: 0 is NVML's 5, 1 is 0, 2 is 4
    assert host.link(0, 2) == "nvlink" and host.link(0, 1) == host.link(1, 2) == "system"
    only = probe(nvlink_box(), gpu_indices=[1, 2, 6])
    assert only.links == ((1, 2, "nvlink"), (1, 6, "system"), (2, 6, "system"))


def test_cards_without_nvlink_get_their_pcie_distance_and_no_notes():
    nvml = FakeNvml([FakeGpu("RTX 4090", 24, cc=(8, 9), mig=None, switch=0 if i < 2 else None, numa=i // 3)
                     for i in range(4)])
    host = probe(nvml)
    assert (host.link(0, 1), host.link(1, 2), host.link(2, 3)) == ("pcie-switch", "numa", "system")
    assert host.nvlink_islands() == [] and host.notes == ()
    assert nvml.calls["nvmlDeviceGetNvLinkState"] == 4, "NOT_SUPPORTED on link 0 ends the card's link scan"


def test_gpus_on_one_nvswitch_are_all_nvlink_peers():
    switches = ["00000000:A0:00.0", "00000000:A1:00.0"]  # every GPU has a link to each switch
    host = probe(FakeNvml([FakeGpu("H100", 80, nvlink=list(switches), numa=i // 4) for i in range(8)]))
    assert host.nvlink_islands() == [list(range(8))] and host.link(0, 7) == "nvlink"


@pytest.mark.parametrize("broken", [("nvmlDeviceGetNvLinkState", "nvmlDeviceGetTopologyCommonAncestor"),
                                    ("nvmlDeviceGetPciInfo", "nvmlDeviceGetTopologyCommonAncestor"),
                                    ("nvmlDeviceGetNvLinkRemotePciInfo", "nvmlDeviceGetTopologyCommonAncestor")])
def test_a_driver_whose_topology_calls_fail_leaves_links_unknown_with_one_note(broken):
    host = probe(nvlink_box(fail={fn: pynvml.NVML_ERROR_UNKNOWN for fn in broken}))
    assert len(host.gpus) == 8 and host.links == () and host.link(0, 1) == "unknown"
    assert len(host.notes) == 1 and "links" in host.notes[0] and "Unknown Error" in host.notes[0]


def test_nvlink_unknown_still_leaves_the_pcie_path_nvml_knows():
    host = probe(nvlink_box(fail={"nvmlDeviceGetNvLinkState": pynvml.NVML_ERROR_GPU_IS_LOST}))
    assert host.link(0, 1) == "pcie-switch" and host.link(0, 4) == "system"
    assert len(host.notes) == 1 and "NVLink state" in host.notes[0]


def test_a_record_from_an_older_or_newer_worker_still_parses():
    old = {"hostname": "box", "cores": 4, "ram_total_gib": 8, "ram_available_gib": 8,
           "gpus": [{"index": 0, "name": "A100", "vram_total_gib": 80, "vram_free_gib": 80, "from_the_future": 1}]}
    host = HostResources.from_dict(old)  # no "links" (written before them), an unknown GPU field (after)
    assert host.links == () and host.link(0, 1) == "unknown" and host.gpus[0].name == "A100"


def test_the_fake_speaks_pynvml_names_and_the_probe_its_constants():
    """The fake stands in for pynvml only while its functions are pynvml's, and the codes the
    probe hard-codes are the C API's."""
    from worker import gpus, topology
    assert [n for n in dir(FakeNvml) if n.startswith("nvml") and not hasattr(pynvml, n)] == []
    assert topology.ANCESTOR_KINDS == {pynvml.NVML_TOPOLOGY_INTERNAL: "board", pynvml.NVML_TOPOLOGY_SINGLE:
                                       "pcie-switch", pynvml.NVML_TOPOLOGY_MULTIPLE: "pcie-switch",
                                       pynvml.NVML_TOPOLOGY_HOSTBRIDGE: "pcie-host",
                                       pynvml.NVML_TOPOLOGY_NODE: "numa", pynvml.NVML_TOPOLOGY_SYSTEM: "system"}
    assert gpus._NOT_FOUND == pynvml.NVML_ERROR_NOT_FOUND
    assert topology._NO_SUCH_LINK == (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_INVALID_ARGUMENT)
    assert (topology._FEATURE_ENABLED, topology._NVLINK_SWITCH) == (pynvml.NVML_FEATURE_ENABLED,
                                                                    pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH)


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


def test_a_reprobe_for_free_memory_makes_no_topology_calls():
    """A live worker re-probes its GPUs' free memory once a second; the links never change, so
    the re-probe must not repeat the topology calls (hundreds on an 8-GPU box)."""
    full, again = nvlink_box(), nvlink_box()
    assert probe(full).nvlink_islands() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    quick = probe(again, with_links=False)
    topology_calls = {fn for fn in full.calls if "NvLink" in fn or "Topology" in fn}
    assert topology_calls and not topology_calls & set(again.calls)
    assert quick.links == () and len(quick.gpus) == 8
