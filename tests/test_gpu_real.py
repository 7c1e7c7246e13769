"""On a machine with a real NVIDIA GPU: the probe reads it through the real NVML, and a job
fleet runs sees exactly the GPU its claim reserved. Skipped where NVML finds no GPU (CI, this
project's own machines); scripts/gpu_check.sh runs these on a lent GPU machine."""

from __future__ import annotations

import re
import shutil
import sys

import pytest
import tomli_w

from scheduler.states import JobState
from worker.probe import probe_host

pytestmark = pytest.mark.gpu


def _real_gpus():
    host = probe_host("gpu-check")
    return host if host.gpus else None


HOST = _real_gpus()
needs_gpu = pytest.mark.skipif(HOST is None, reason="no NVIDIA GPU visible to NVML here")


@needs_gpu
def test_the_real_probe_reports_name_memory_capability_and_uuid():
    for gpu in HOST.gpus:
        assert gpu.name and gpu.name != "unknown GPU"
        assert gpu.vram_total_gib > 1 and 0 <= gpu.vram_free_gib <= gpu.vram_total_gib
        assert re.fullmatch(r"\d+\.\d+", gpu.compute_capability or ""), gpu.compute_capability
        assert re.fullmatch(r"(GPU|MIG)-[0-9a-fA-F-]+", gpu.uuid), gpu.uuid
    print("real probe:", [(g.name, round(g.vram_total_gib, 1), g.compute_capability, g.uuid) for g in HOST.gpus])


@needs_gpu
@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="nvidia-smi not installed")
def test_a_job_sees_exactly_the_gpu_it_reserved(procs, real_store, tmp_path):
    """The job's own CUDA_VISIBLE_DEVICES holds the reserved GPU's UUID, and nvidia-smi -L run
    inside the job lists exactly that GPU (nvidia-smi honours CUDA_VISIBLE_DEVICES)."""
    script = ("import os, subprocess, sys; print('VISIBLE=' + os.environ['CUDA_VISIBLE_DEVICES']); "
              "sys.stdout.flush(); subprocess.run(['nvidia-smi', '-L'], check=True)")
    manifest = tmp_path / "m.toml"
    manifest.write_text(tomli_w.dumps({"schema_version": 1, "jobs": [
        {"name": "one-gpu", "model": "m", "gpus": 1, "command": [sys.executable, "-c", script]}]}))
    assert procs.run("load", str(manifest)).returncode == 0
    worker = procs.worker("--burst", name="gpu-check")
    assert worker.wait(120) == 0, procs.log_of(worker)
    record = real_store.jobs.get(real_store.jobs.resolve("one-gpu"))
    assert record.state is JobState.FINISHED
    (attempt,) = real_store.jobs.attempts(record.job_id)
    (log,) = (tmp_path / "runs").glob("one-gpu-*/attempt-1/log.txt")
    text = log.read_text()
    print(text)
    visible = re.search(r"VISIBLE=(\S+)", text).group(1)
    listed = re.findall(r"\(UUID: ((?:GPU|MIG)-[^)]+)\)", text)
    assert visible == attempt["gpu"] and listed == [visible]
