"""`fleet demo` end to end: the README's first command, on an embedded redis-server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from support.procs import REPO, wait_for

from scheduler.embedded_redis import redis_server_binary


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
    url = re.search(r"dashboard: (http://127\.0\.0\.1:(\d+)/)", out)
    assert url, out[:2000]
    with socket.socket() as probe:  # stopped with everything else
        assert probe.connect_ex(("127.0.0.1", int(url.group(2)))) != 0, "the dashboard still listens"
    # The demo's children run in (and are given paths under) its temp dir inside tmp_path.
    leftovers = [p for p in psutil.process_iter(["cmdline", "cwd"]) if p.pid not in before and (
                 str(tmp_path) in " ".join(p.info["cmdline"] or []) or (p.info["cwd"] or "").startswith(str(tmp_path)))]
    assert leftovers == []
    assert not [d for d in os.listdir(tmp_path) if d.startswith("fleet-")], "temp dirs must be removed"


def _start_demo(tmp_path) -> tuple[subprocess.Popen, str]:
    """`fleet demo` as its own process, its temp dirs under ``tmp_path``, its output in a file."""
    env = dict(os.environ, PYTHONPATH=REPO, NO_COLOR="1", TMPDIR=str(tmp_path))
    env.pop("FLEET_REDIS_URL", None)
    out_path = str(tmp_path / "demo.out")
    with open(out_path, "wb") as out:
        demo = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "demo", "--timeout-s", "120"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    return demo, out_path


def _started_once_jobs_run(demo: subprocess.Popen, out_path: str) -> dict[psutil.Process, str]:
    """Every process under the demo (with its command line) once its jobs run: when a stop has
    the most to end (redis-server, receiver, workers, their work horses and jobs)."""
    def running() -> bool:
        with open(out_path) as fh:
            text = fh.read()
        assert demo.poll() is None, f"the demo ended before its jobs ran:\n{text[-3000:]}"
        return re.search(r"\b[1-9][0-9]* running", text) is not None

    wait_for(running, timeout_s=60, what="the demo's jobs to run")
    procs, direct = {}, []
    for proc in psutil.Process(demo.pid).children(recursive=True):
        try:
            procs[proc] = " ".join(proc.cmdline()).strip()
            if proc.ppid() == demo.pid:
                direct.append(procs[proc])
        except psutil.Error:  # a job that just ended (asking its parent failed on CI once)
            procs.pop(proc, None)
    server = os.path.basename(redis_server_binary())  # redis-server, or FLEET_REDIS_SERVER's valkey-server
    assert len(direct) == 7 and any(server in cmd for cmd in direct), direct  # + receiver, 5 workers
    return procs


def _left_running(procs: dict[psutil.Process, str], within_s: float) -> list[str]:
    """The command lines of ``procs`` still running after up to ``within_s`` (a zombie counts as
    gone: its parent has only to reap it)."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for proc, cmd in procs.items():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{proc.pid}: {cmd}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _kill_all(demo: subprocess.Popen, procs: dict[psutil.Process, str]) -> None:
    """Teardown: whatever a failing test left behind, so no test leaves processes running."""
    if demo.poll() is None:
        demo.kill()
        demo.wait()
    for proc in procs:
        try:
            if proc.is_running():  # checks the pid was not reused
                proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_demo_stopped_by_sigterm_or_sighup_ends_everything_it_started_and_removes_its_temp_dirs(tmp_path, sig):
    """`timeout`, `kill` and a closed terminal get what Ctrl-C gets; their exit code says which."""
    demo, out_path = _start_demo(tmp_path)
    procs: dict[psutil.Process, str] = {}
    try:
        procs = _started_once_jobs_run(demo, out_path)
        demo.send_signal(sig)
        assert demo.wait(timeout=20) == 128 + sig
        assert _left_running(procs, within_s=2) == []
        assert not [d for d in os.listdir(tmp_path) if d.startswith("fleet-")], "temp dirs must be removed"
    finally:
        _kill_all(demo, procs)


def test_demo_killed_outright_takes_its_processes_with_it(tmp_path):
    """SIGKILL runs none of the demo's cleanup, yet its redis-server, receiver and workers (and so
    their jobs) end with it. Its temp dirs stay: nothing is left to remove them."""
    demo, out_path = _start_demo(tmp_path)
    procs: dict[psutil.Process, str] = {}
    try:
        procs = _started_once_jobs_run(demo, out_path)
        demo.kill()
        demo.wait(timeout=10)
        assert _left_running(procs, within_s=5) == []
    finally:
        _kill_all(demo, procs)


def test_a_chosen_server_binary_that_is_not_one_is_a_clear_error(monkeypatch, tmp_path):
    """FLEET_REDIS_SERVER runs the demo and the tests on another server (a valkey-server)."""
    from scheduler.embedded_redis import RedisServer, RedisServerError

    monkeypatch.setenv("FLEET_REDIS_SERVER", str(tmp_path / "valkey-server"))
    with pytest.raises(RedisServerError, match=r"FLEET_REDIS_SERVER=.*valkey-server.* is not an executable file"):
        RedisServer()
