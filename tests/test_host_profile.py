"""Declared host profiles: the documented format loads, a probed host round-trips, bad ones are one-liners."""

from __future__ import annotations

import pytest
from fake_nvml import FakeGpu, FakeNvml

from scheduler.errors import ProbeError
from worker.host_profile import dump_host_profile, load_host_profile
from worker.probe import probe_host

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
    (GOOD.replace("[[gpus]]", "[[gpus]]\ncompute_capability = 8"), "gpus[0].compute_capability"),
    ("hostname = \n", "invalid TOML"),
])
def test_broken_profile_is_one_line_naming_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProbeError) as err:
        load_host_profile(path)
    message = str(err.value)
    assert message.startswith(str(path)) and field in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ProbeError, match="not found"):
        load_host_profile(tmp_path / "nope.toml")
