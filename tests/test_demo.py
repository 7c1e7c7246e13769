"""`fleet demo` end to end: the README's first command, on an embedded redis-server."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from support.procs import REPO


import pytest


@pytest.mark.parametrize("extra", [[], ["--fake-redis"]], ids=["redis-server", "fakeredis-fallback"])
def test_demo_runs_every_runnable_job_explains_the_rest_and_leaves_nothing_behind(tmp_path, extra):
    before = {p.pid for p in psutil.process_iter()}
    env = dict(os.environ, PYTHONPATH=REPO, NO_COLOR="1", TMPDIR=str(tmp_path))
    env.pop("FLEET_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "scheduler.cli", "demo", "--timeout-s", "120", *extra], env=env,
                          capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert ("FALLBACK" in out) == bool(extra)
    for name in ("logreg-lr0.01", "mlp-h8", "mlp-h32-wide"):
        assert f"{name} " in out
    table = out[out.index("where each job ran"):out.index("best run")]
    assert table.count("finished") == 9 and "transformer-xl     pending" in table
    assert "waited for mlp-h32-wide" in table  # the train -> eval dependency
    wide = next(line for line in table.splitlines() if line.startswith("mlp-h32-wide"))
    assert "gpu-a100" in wide  # 40 GiB fits only the A100s
    assert wide.count("A100") == 1 and "on GPU " in wide  # the one card it reserved, not the host's every GPU
    assert "`fleet explain transformer-xl`" in out and "min_vram_gib 200 > free 80" in out
    assert "best run by accuracy:" in out
    assert "artifacts: 9 finished jobs verified" in out
    # The demo's children run in (and are given paths under) its temp dir inside tmp_path.
    leftovers = [p for p in psutil.process_iter(["cmdline", "cwd"]) if p.pid not in before and (
                 str(tmp_path) in " ".join(p.info["cmdline"] or []) or (p.info["cwd"] or "").startswith(str(tmp_path)))]
    assert leftovers == []
    assert not [d for d in os.listdir(tmp_path) if d.startswith("fleet-")], "temp dirs must be removed"
