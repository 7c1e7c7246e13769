"""The one `procs` fixture (tests/conftest.py): a test that fails with a worker running a job
leaves no process behind, neither the worker nor the job in its own session."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil

TESTS = os.path.dirname(os.path.abspath(__file__))

INNER = '''
import json, os, sys

from conftest import procs, real_redis, real_store, redis_server  # noqa: F401  the fixtures under test
from support.procs import wait_for, write_profile

import psutil
import tomli_w


def test_fails_while_a_job_runs(procs, real_store, tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text(tomli_w.dumps({"schema_version": 1, "jobs": [
        {"name": "long", "model": "m", "command": [sys.executable, "-c", "import time; time.sleep(300)"]}]}))
    assert procs.run("load", str(manifest)).returncode == 0
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w", lease_s=30)
    wait_for(lambda: real_store.jobs.counts()["running"] == 1, what="the job running")
    job = wait_for(lambda: [p for p in psutil.process_iter(["cmdline"])
                            if "time.sleep(300)" in " ".join(p.info["cmdline"] or [])], what="the job's process")
    tree = {worker.pid, *(p.pid for p in psutil.Process(worker.pid).children(recursive=True)), *(p.pid for p in job)}
    with open(os.environ["PIDS_FILE"], "w") as fh:
        json.dump(sorted(tree), fh)
    raise AssertionError("this test fails with its processes running")
'''


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_failing_test_leaves_no_fleet_process_behind(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER)
    pids_file = tmp_path / "pids.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.path.dirname(TESTS)]), PIDS_FILE=str(pids_file))
    inner = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--basetemp", str(tmp_path / "inner-tmp"), str(tmp_path / "test_inner.py")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert inner.returncode == 1 and "1 failed" in inner.stdout, inner.stdout + inner.stderr
    assert "this test fails with its processes running" in inner.stdout
    tree = json.loads(pids_file.read_text())
    assert len(tree) >= 3, tree  # the worker, its work horse, the job (in a session of its own)
    assert [pid for pid in tree if running(pid)] == []
