"""How an attempt's process tree is stopped: real processes, no Redis.

A timeout (or cancel, or lost lease) sends SIGTERM and waits up to the grace period
for the job to save a checkpoint; the grace must end as soon as the job has exited,
and a job that ignores SIGTERM is killed when it runs out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from worker.proctree import kill_tree
from worker.runner import RunError, build_argv, run_attempt

SAVES_ON_SIGTERM = """
import signal, sys, time
def save(*_):
    open("checkpoint", "w").write("saved")
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
print("training", flush=True)
time.sleep(300)
"""

IGNORES_SIGTERM = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("pid", "w").write(str(os.getpid()))
time.sleep(300)
"""


def test_the_grace_ends_as_soon_as_the_job_has_saved_and_exited(tmp_path):
    started = time.monotonic()
    result = run_attempt([sys.executable, "-c", SAVES_ON_SIGTERM], str(tmp_path), dict(os.environ), timeout_s=0.5,
                         grace_s=20)
    took = time.monotonic() - started
    assert result.outcome == "timeout" and (tmp_path / "checkpoint").read_text() == "saved"
    assert took < 10, f"stopping took {took:.1f}s: the 20 s grace was waited out after the job had exited"


def test_a_job_that_ignores_sigterm_is_killed_when_the_grace_runs_out(tmp_path):
    started = time.monotonic()
    result = run_attempt([sys.executable, "-c", IGNORES_SIGTERM], str(tmp_path), dict(os.environ), timeout_s=0.5,
                         grace_s=1.5)
    took = time.monotonic() - started
    assert result.outcome == "timeout" and took >= 2.0  # the grace was given in full
    assert not psutil.pid_exists(int((tmp_path / "pid").read_text()))


def test_a_cold_stop_during_the_grace_kills_the_job_at_once(tmp_path):
    """The worker's second SIGTERM reaches the horse through the stop pipe too (worker/execute.py):
    a job ignoring the first one is killed then, not when its 30 s grace runs out."""
    asked = time.monotonic() + 1.0
    started = time.monotonic()
    result = run_attempt([sys.executable, "-c", IGNORES_SIGTERM], str(tmp_path), dict(os.environ),
                         should_stop=lambda: "interrupted", grace_s=30, stop_now=lambda: time.monotonic() > asked)
    took = time.monotonic() - started
    assert result.outcome == "interrupted" and took < 10, f"took {took:.1f}s: the cold stop waited out the grace"
    assert not psutil.pid_exists(int((tmp_path / "pid").read_text()))


COUNTS_SIGNALS = """
import os, signal, subprocess, sys, time
who = sys.argv[1] if len(sys.argv) > 1 else "leader"
def note(*_):
    with open("signals", "a") as fh:
        fh.write(who + "\\n")
signal.signal(signal.SIGRTMIN, note)
if who == "leader":
    subprocess.Popen([sys.executable, "job.py", "child"])
open(who + ".tmp", "w").write(str(os.getpid()))
os.rename(who + ".tmp", who)
while True:
    time.sleep(0.05)
"""


def test_a_stop_signals_each_process_of_the_job_once(tmp_path):
    """A second SIGTERM often means "quit now, skip the checkpoint". Two plain SIGTERMs sent
    close together may merge, so this counts a real-time signal, which the kernel queues."""
    (tmp_path / "job.py").write_text(COUNTS_SIGNALS)
    leader = subprocess.Popen([sys.executable, "job.py"], cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not ((tmp_path / "leader").exists() and (tmp_path / "child").exists()):
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.02)
        kill_tree(leader.pid, signal.SIGRTMIN)
        signals = tmp_path / "signals"
        while not (signals.exists() and len(signals.read_text().split()) >= 2):
            assert time.monotonic() < deadline + 20, "the signal never arrived"
            time.sleep(0.02)
        time.sleep(0.3)  # room for a second delivery, had there been one
        assert sorted(signals.read_text().split()) == ["child", "leader"]
    finally:
        kill_tree(leader.pid, signal.SIGKILL)
        leader.wait()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_helper_left_in_the_jobs_group_dies_with_the_job(tmp_path):
    result = run_attempt(["sh", "-c", "sleep 300 & echo $! > helper"], str(tmp_path), dict(os.environ))
    assert result.outcome == "finished"
    helper = int((tmp_path / "helper").read_text())
    deadline = time.monotonic() + 5
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(helper), "a background process of the job's group outlived the attempt"


def test_without_pidfd_the_exit_is_still_seen_at_once(tmp_path, monkeypatch):
    def no_pidfd(pid):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    started = time.monotonic()
    result = run_attempt(["sh", "-c", "exit 3"], str(tmp_path), dict(os.environ))
    assert result.outcome == "failed" and result.exit_code == 3
    assert time.monotonic() - started < 1.0


LEAVES_A_SHORT_LIVED_ORPHAN = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open("orphan", "w").write(str(os.getpid()))
        time.sleep(0.1)
        os._exit(0)
    os._exit(0)
time.sleep(1.5)
try:
    with open("/proc/%s/status" % open("orphan").read()) as fh:
        state = next(line.split()[1] for line in fh if line.startswith("State:"))
except FileNotFoundError:
    state = "reaped"
open("orphan-state", "w").write(state)
"""


def test_orphans_that_exit_while_the_job_runs_are_reaped_at_once(tmp_path):
    """A long job whose helpers come and go must not pile up zombies (each holds a pid) until it ends.
    Run in a child process: the process that adopts orphans must be one whose only child is the job."""
    (tmp_path / "job.py").write_text(LEAVES_A_SHORT_LIVED_ORPHAN)
    horse = ("import os, sys; from worker.proctree import adopt_orphans; from worker.runner import run_attempt; "
             f"r = run_attempt([sys.executable, 'job.py'], {str(tmp_path)!r}, dict(os.environ), "
             "end_orphans=adopt_orphans()); print(r.outcome)")
    done = subprocess.run([sys.executable, "-c", horse], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.stdout.strip() == "finished", done.stderr
    assert (tmp_path / "orphan-state").read_text() == "reaped"


def test_own_children_are_found_with_and_without_proc_children_files(monkeypatch):
    """The job's orphans are found through /proc/self/task/*/children, or by psutil's scan
    on a kernel without those files."""
    from worker import proctree as runner

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in runner._own_children()

        listdir = os.listdir

        def no_task_dir(path):
            if path == "/proc/self/task":
                raise FileNotFoundError(path)
            return listdir(path)

        monkeypatch.setattr(runner.os, "listdir", no_task_dir)
        assert child.pid in runner._own_children()
    finally:
        child.kill()
        child.wait()


SPEC = {"name": "x", "model": "knn", "seed": 3, "hyper": {"lr": 0.1}, "after": ["a"], "command": []}


@pytest.mark.parametrize("arg", ["{after.__init__.__globals__[os].environ}", "{after._dirs}", "{model.__class__}",
                                 "{hyper.keys}", "{after}"])
def test_placeholders_cannot_reach_attributes(arg):
    """A format string can walk attributes; through the parent lookup it reached the worker's
    environment, Redis password included. Only {after.<job>.output_dir} reads an attribute."""
    with pytest.raises(RunError, match="cannot fill placeholders"):
        build_argv({**SPEC, "command": ["echo", arg]}, "0" * 16, "/out", 1, {"a": "/runs/a"})


def test_placeholders_fill_fields_indexes_and_the_parents_output_dir():
    spec = {**SPEC, "command": ["{model}", "{hyper[lr]}", "{seed:02d}", "{after.a.output_dir}", "{attempt}"]}
    assert build_argv(spec, "0" * 16, "/out", 2, {"a": "/runs/a"}) == ["knn", "0.1", "03", "/runs/a", "2"]


def test_a_nul_byte_fails_the_attempt_cleanly_rather_than_killing_the_horse():
    spec = {**SPEC, "hyper": {"tag": "a\0b"}, "command": ["echo", "{hyper[tag]}"]}
    with pytest.raises(RunError, match="NUL byte"):
        build_argv(spec, "0" * 16, "/out", 1)


def test_an_argument_the_real_output_dir_makes_too_long_fails_the_attempt():
    """The loader fills {output_dir} with a short stand-in; the worker's real one can push an
    argument past what exec accepts, which must fail the attempt, not raise E2BIG in the horse."""
    from scheduler.manifest.command import MAX_ARG_BYTES

    spec = {**SPEC, "command": ["echo", "{output_dir}" + "x" * (MAX_ARG_BYTES - 40)]}
    assert build_argv(spec, "0" * 16, "/out", 1)
    with pytest.raises(RunError, match="at most 131071 bytes"):
        build_argv(spec, "0" * 16, "/var/lib/fleet/runs/x-0000000000000000/attempt-1" + "/deeper" * 10, 1)


def test_a_huge_format_width_fails_the_attempt_without_allocating_it():
    spec = {**SPEC, "hyper": {"w": 400_000_000}, "command": ["echo", "{model:>{hyper[w]}}"]}
    with pytest.raises(RunError, match="at most 1024"):
        build_argv(spec, "0" * 16, "/out", 1)
