"""Declared host profiles: the documented format loads, a probed host round-trips, bad ones are one-liners;
``--gpu`` picks a profile's GPUs as CUDA_VISIBLE_DEVICES would."""

from __future__ import annotations

import glob
import json
import os

import pytest
from fake_nvml import FakeGpu, FakeNvml, mig_a100, nvlink_box

from scheduler.cli import build_parser, main
from scheduler.commands.worker import describe_host
from scheduler.errors import ProbeError
from worker.host_profile import dump_host_profile, load_host_profile
from worker.probe import probe_host

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DGX = os.path.join(ROOT, "manifests", "profiles", "dgx-8xh100.toml")

GOOD = 'hostname = "bigbox"\ncuda = true\ncores = 32\nram_gib = 256\n[[gpus]]\nname = "A100-SXM4-80GB"\nvram_gib = 80\n'


def test_documented_format(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(GOOD)
    host = load_host_profile(path)
    assert host.hostname == "bigbox" and host.cores == 32 and host.ram_total_gib == 256 and host.simulated
    assert [(g.name, g.vram_total_gib, g.vram_free_gib) for g in host.gpus] == [("A100-SXM4-80GB", 80, 80)]


def test_probed_host_round_trips(tmp_path):
    probed = probe_host("gpubox", nvml=FakeNvml([FakeGpu("A100", 80, free_gib=70), FakeGpu("A100", 40)]), environ={})
    path = tmp_path / "p.toml"
    path.write_text(dump_host_profile(probed))
    loaded = load_host_profile(path)
    assert loaded.hostname == "gpubox" and loaded.cores == probed.cores
    assert [(g.vram_total_gib, g.vram_free_gib, g.uuid) for g in loaded.gpus] == [
        (80, 70, probed.gpus[0].uuid), (40, 40, probed.gpus[1].uuid)]


@pytest.mark.parametrize("text,field", [
    (GOOD.replace("cores = 32", 'cores = "many"'), "cores"),
    (GOOD.replace("cores = 32", "cores = 0"), "cores"),
    (GOOD.replace("ram_gib = 256", "ram_gib = -4"), "ram_gib"),
    (GOOD.replace("vram_gib = 80", 'vram_gib = "80GB"'), "gpus[0].vram_gib"),
    (GOOD.replace("vram_gib = 80", "vram_gb = 80"), "gpus[0].vram_gb"),
    (GOOD.replace("cuda = true", "cuda = 1"), "cuda"),
    (GOOD.replace("cuda = true", "cuda = false"), "cuda"),
    ('hostname = "x"\ncuda = true\ncores = 1\nram_gib = 1\n', "cuda"),
    (GOOD.replace('hostname = "bigbox"', 'hostname = "big box"'), "hostname"),
    (GOOD.replace('hostname = "bigbox"\n', ""), "hostname"),
    (GOOD + "colour = 1\n", "colour"),
    (GOOD.replace("ram_gib = 256", "ram_gbi = 256"), "ram_gbi"),
    (GOOD + "ram_available_gib = 512\n", "ram_available_gib"),
    (GOOD.replace("vram_gib = 80", "vram_gib = 80\nvram_free_gib = 90"), "gpus[0].vram_free_gib"),
    (GOOD.replace("[[gpus]]", "[[gpus]]\ncompute_capability = 80"), "gpus[0].compute_capability"),
    (GOOD.replace("[[gpus]]", "[[gpus]]\ncompute_capability = 0.5"), "gpus[0].compute_capability"),
    (GOOD.replace("[[gpus]]", '[[gpus]]\ncompute_capability = "8.x"'), "gpus[0].compute_capability"),
    (GOOD.replace("[[gpus]]", "[[gpus]]\ncompute_capability = true"), "gpus[0].compute_capability"),
    (GOOD.replace("[[gpus]]", '[[gpus]]\nuuid = "GPU 1"'), "gpus[0].uuid"),
    (GOOD.replace("[[gpus]]", '[[gpus]]\nuuid = "a100-0"'), "gpus[0].uuid"),
    (GOOD.replace("[[gpus]]", '[[gpus]]\nuuid = "GPU-1,GPU-2"'), "gpus[0].uuid"),
    (GOOD.replace("[[gpus]]", '[[gpus]]\nuuid = "GPU-1"') + GOOD[GOOD.index("[[gpus]]"):].replace(
        "[[gpus]]", '[[gpus]]\nuuid = "GPU-1"'), "gpus[1].uuid"),
    (GOOD.replace("[[gpus]]", "nvlink = [[0, 1]]\n[[gpus]]"), "nvlink[0]"),  # one GPU: there is no GPU 1
    (GOOD.replace("[[gpus]]", "nvlink = [[0]]\n[[gpus]]"), "nvlink[0]"),
    (GOOD.replace("[[gpus]]", "nvlink = [0, 1]\n[[gpus]]"), "nvlink"),
    ("hostname = \n", "invalid TOML"),
])
def test_broken_profile_is_one_line_naming_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProbeError) as err:
        load_host_profile(path)
    message = str(err.value)
    assert message.startswith(str(path)) and field in message and "\n" not in message


def test_capability_uuid_and_nvlink_islands_load(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(GOOD.replace("[[gpus]]", "nvlink = [[1, 0]]\n[[gpus]]")
                    + 'compute_capability = 8\nuuid = "GPU-5f2b-01"\n'
                    + '[[gpus]]\nname = "RTX 3090"\nvram_gib = 24\ncompute_capability = "8.6"\n')
    host = load_host_profile(path)
    assert [(g.compute_capability, g.uuid) for g in host.gpus] == [("8.0", "GPU-5f2b-01"), ("8.6", "")]
    assert host.links == ((0, 1, "nvlink"),) and host.gpus[1].capability == (8, 6)


def test_a_gpu_in_two_islands_is_refused(tmp_path):
    path = tmp_path / "dgx.toml"
    path.write_text(open(DGX).read().replace("[[0, 1, 2, 3], [4, 5, 6, 7]]", "[[0, 1, 2, 3], [3, 4]]"))
    with pytest.raises(ProbeError, match=r"nvlink\[1\]: GPU 3 is already in nvlink\[0\]"):
        load_host_profile(path)


def test_every_example_profile_loads_and_the_dgx_has_two_islands():
    hosts = {os.path.basename(p): load_host_profile(p)
             for p in glob.glob(os.path.join(ROOT, "manifests", "*", "*.toml")) if "[[gpus]]" in open(p).read()
             or "cuda = false" in open(p).read()}
    assert {"gpu-4090.toml", "gpu-a100.toml", "dgx-8xh100.toml", "cpu-1.toml"} <= set(hosts)
    assert hosts["gpu-4090.toml"].gpus[0].compute_capability == "8.9"
    dgx = hosts["dgx-8xh100.toml"]
    assert len(dgx.gpus) == 8 and {g.compute_capability for g in dgx.gpus} == {"9.0"}
    assert {g.vram_total_gib for g in dgx.gpus} == {80}
    assert dgx.nvlink_islands() == [[0, 1, 2, 3], [4, 5, 6, 7]] and dgx.link(3, 4) == "unknown"


@pytest.mark.parametrize("nvml", [nvlink_box, mig_a100], ids=["nvlink-box", "mig-a100"])
def test_a_probed_topology_and_mig_round_trip(tmp_path, nvml):
    probed = probe_host("gpubox", nvml=nvml(), environ={})
    path = tmp_path / "p.toml"
    path.write_text(dump_host_profile(probed))
    loaded = load_host_profile(path)
    assert [(g.name, g.uuid, g.compute_capability, g.vram_total_gib) for g in loaded.gpus] == [
        (g.name, g.uuid, g.compute_capability, g.vram_total_gib) for g in probed.gpus]
    assert loaded.nvlink_islands() == probed.nvlink_islands()
    assert [link for link in probed.links if link[2] == "nvlink"] == list(loaded.links)  # PCIe is not declared


def test_a_partial_nvlink_mesh_is_not_overstated_in_a_dump(tmp_path):
    ring = FakeNvml([FakeGpu("V100", 16, cc=(7, 0), nvlink=[(i - 1) % 4, (i + 1) % 4]) for i in range(4)])
    probed = probe_host("ring", nvml=ring, environ={})
    assert probed.nvlink_islands() == [[0, 1, 2, 3]] and probed.link(0, 2) != "nvlink"
    path = tmp_path / "ring.toml"
    path.write_text(dump_host_profile(probed))
    assert load_host_profile(path).links == ()


def test_gpu_flag_picks_the_profiles_gpus_renumbered_as_the_worker_sees_them():
    args = build_parser().parse_args(["worker", "--host-profile", DGX, "--gpu", "5,4", "--gpu", "0"])
    host = describe_host(args)
    assert [(g.index, g.nvml_index) for g in host.gpus] == [(0, 5), (1, 4), (2, 0)]
    assert len({g.ledger_key for g in host.gpus}) == 3 and host.gpus[0].ledger_key == "gpu5"  # as workers share it
    assert host.links == ((0, 1, "nvlink"),) and host.link(1, 2) == "unknown"
    whole = describe_host(build_parser().parse_args(["worker", "--host-profile", DGX]))
    assert len(whole.gpus) == 8


def test_probe_cli_with_a_profile_and_gpu_shows_capability_uuid_and_links(capsys):
    assert main(["probe", "--host-profile", DGX, "--gpu", "1,2", "--offline", "--json"]) == 0
    host = json.loads(capsys.readouterr().out)["host"]
    assert [(g["index"], g["nvml_index"], g["compute_capability"], g["uuid"]) for g in host["gpus"]] == [
        (0, 1, "9.0", ""), (1, 2, "9.0", "")]
    assert host["links"] == [[0, 1, "nvlink"]] and host["nvlink_islands"] == [[0, 1]]
    assert main(["probe", "--host-profile", DGX, "--offline"]) == 0
    out = capsys.readouterr().out
    assert "compute 9.0" in out and "NVLink: [0 1 2 3] [4 5 6 7]" in out


@pytest.mark.parametrize("gpus,words", [("8", "has no GPU 8 (it declares 8 [[gpus]], 0-7)"), ("1,1", "given twice")])
def test_a_gpu_the_profile_lacks_is_one_line_naming_the_profile(capsys, gpus, words):
    assert main(["probe", "--host-profile", DGX, "--gpu", gpus, "--offline"]) == 2
    err = capsys.readouterr().err
    assert words in err and DGX in err and len(err.strip().splitlines()) == 1


def test_missing_file(tmp_path):
    with pytest.raises(ProbeError, match="not found"):
        load_host_profile(tmp_path / "nope.toml")
