"""The shipped units parse under systemd-analyze and say what the README promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

UNITS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "systemd")


def unit(name: str) -> str:
    return open(os.path.join(UNITS, name)).read()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", ["fleet-receiver.service", "fleet-worker@.service", "fleet-worker-cpu.service"])
def test_unit_verifies(name, tmp_path):
    # The install paths don't exist here; verify a copy whose ExecStart points at a real binary.
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", unit(name), flags=re.M)
    text = re.sub(r"^(User|Group)=.*$", "", text, flags=re.M)
    target = tmp_path / (name.replace("@.", "@0.") if "@" in name else name)
    target.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines()
                if any(w in line for w in ("Unknown", "unknown", "Invalid", "invalid", "Missing", "bad-setting"))
                and str(tmp_path) in line]
    assert problems == [], done.stderr


def test_receiver_reloads_with_sighup_and_notifies():
    text = unit("fleet-receiver.service")
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "Type=notify" in text and "EnvironmentFile=-/etc/fleet/fleet.env" in text


def test_worker_instance_is_the_gpu_index():
    text = unit("fleet-worker@.service")
    assert "Environment=CUDA_VISIBLE_DEVICES=%i" in text
    assert "KillSignal=SIGTERM" in text and "KillMode=mixed" in text
