"""Run one job attempt as a command in its own process group, and end it cleanly.

The command is an argv list (never a shell string): manifest strings can't inject
shell syntax. Timeout, cancel, a lost lease and the death of the worker all end
the whole process group plus any descendant that left it, so no grandchild
outlives its attempt. A work horse also adopts the orphans of its job
(:func:`adopt_orphans`), so a helper that left the job's session (setsid, a
daemon's double fork) is found and ended too, even after a clean exit: left
running, it would hold GPU memory the ledger already gave to the next job.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import psutil

from scheduler.errors import FleetError
from scheduler.libc import prctl
from scheduler.manifest.command import CommandError, check_argv, fill_arg, runtime_fields
from scheduler.runs_layout import attempt_file, log_file, result_file, temp_file

log = logging.getLogger("fleet.worker")
KILL_GRACE_S = 5.0
POLL_S = 0.2
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
ADOPTED_KILL_ROUNDS = 5  # an orphan that forks as it dies leaves new orphans: look again, this often
REAP_WAIT_S = 1.0  # a SIGKILLed process stuck in the kernel (D state) is left to init after this


class RunError(FleetError):
    """An attempt could not even start (bad command, unsafe name, unwritable output dir)."""


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # scheduler.store.claims.Outcome value
    exit_code: int | None
    reason: str
    started_at: float
    ended_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def build_argv(spec: Mapping[str, Any], job_id: str, out_dir: str, attempt: int,
               parent_dirs: Mapping[str, str] | None = None) -> list[str]:
    """The argv for a job: its ``command`` with ``{placeholders}`` filled, or its ``entrypoint``.

    Filled by the same code the loader checks commands with (scheduler.manifest.command), so
    a command that loaded fills here; ``parent_dirs`` maps each finished ``after`` job to its
    output dir, for ``{after.<job>.output_dir}``."""
    command = spec.get("command") or []
    if command:
        fields = runtime_fields(spec, job_id, out_dir, attempt)
        try:  # checked again here: the real output dirs are longer than the loader's stand-ins
            argv = [fill_arg(str(arg), fields, parent_dirs or {}) for arg in command]
            check_argv(argv)
            return argv
        except CommandError as err:
            raise RunError(f"job {spec.get('name')!r}: cannot fill placeholders in command: {err}") from None
    if spec.get("entrypoint"):
        return [sys.executable, "-m", "worker.entry", spec["entrypoint"]]
    raise RunError(f"job {spec.get('name')!r} has neither command nor entrypoint; set one in the job or in "
                   f"[defaults]")


def kill_tree(leader_pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal ``leader_pid`` and every descendant, each once, even ones that left its group.

    Once: a job may read a second SIGTERM as "stop saving, quit now". Only for a pid not yet
    reaped (a child of the caller, or one just listed), so never one the kernel reused."""
    try:
        victims = psutil.Process(leader_pid).children(recursive=True)
    except psutil.Error:
        victims = []
    try:
        leads_group = os.getpgid(leader_pid) == leader_pid
    except OSError:  # gone already; its group may not be
        leads_group = True
    if leads_group:
        signal_group(leader_pid, sig)
    else:  # e.g. an orphan that left its session: it leads no group
        _signal(leader_pid, sig)
    for proc in victims:
        try:
            if not (leads_group and os.getpgid(proc.pid) == leader_pid):  # else the group signal reached it
                proc.send_signal(sig)
        except (OSError, psutil.Error):
            pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every process of group ``pgid``; a group with nobody left in it is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_tree(leader_pid: int, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the group, give it up to ``grace_s`` to save a checkpoint, then SIGKILL whatever is left.

    The grace ends as soon as no member is left running: an unreaped (zombie) leader still
    counts for ``killpg(pgid, 0)``, which made every stop wait out the whole grace."""
    kill_tree(leader_pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_running(leader_pid):
            return
        time.sleep(0.05)
    kill_tree(leader_pid, signal.SIGKILL)


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux 3.4+), so a helper that
    escaped the job's session becomes its child instead of init's and can still be ended.

    Two processes do this: the work horse, whose sole child is the job (:func:`run_attempt`
    ends every other child it comes to have), and the worker, whose sole child is the horse:
    when the horse dies (SIGKILL, OOM) the job's whole tree becomes the worker's, which ends it
    (:func:`end_adopted`) before the attempt is recorded and the job can be claimed again.
    False where the kernel or libc has no such call."""
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def _own_children() -> set[int]:
    """This process's children, from /proc/self/task/*/children (a few reads, where psutil
    scans every process on the host: ~2 ms of every job's end)."""
    pids: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as fh:
                pids.update(int(pid) for pid in fh.read().split())
    except (OSError, ValueError):  # a kernel without CONFIG_PROC_CHILDREN
        return {child.pid for child in psutil.Process().children()}
    return pids


def end_adopted(leader_pid: int = 0) -> int:
    """SIGKILL and reap every child of this process but ``leader_pid`` (the job's leader, in the
    work horse; in the worker, 0: its one child, the horse, is reaped already): the orphans it
    adopted (see :func:`adopt_orphans`), each with its descendants. Returns how many there were."""
    ended: set[int] = set()
    for _ in range(ADOPTED_KILL_ROUNDS):
        orphans = reap_exited_orphans(leader_pid)  # those already dead are not counted
        if not orphans:
            break
        for pid in orphans:
            kill_tree(pid, signal.SIGKILL)
        _reap(orphans)
        ended |= orphans
    return len(ended)


def reap_exited_orphans(leader_pid: int) -> set[int]:
    """Reap the adopted orphans that have exited while the job runs (a week-long job whose
    helpers come and go would otherwise pile up zombies, each holding a pid, until its end);
    returns those still alive."""
    return {pid for pid in _own_children() - {leader_pid} if not _reaped(pid)}


def _reaped(pid: int) -> bool:
    """Whether child ``pid`` had already exited (and is now reaped)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _reap(pids: set[int]) -> None:
    left, deadline = set(pids), time.monotonic() + REAP_WAIT_S
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if not _reaped(pid)}
        if left:
            time.sleep(0.01)


def _group_running(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies do not count).

    The leader first: while it saves its checkpoint the answer needs no scan of every
    process on the host, which ran every 50 ms of the grace."""
    try:
        if psutil.Process(pgid).status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        pass
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


class _ExitWatch:
    """Tells when child ``pid`` has exited, leaving it unreaped (WNOWAIT): until it is reaped,
    its pid, and so its process group id, cannot be reused by another process.

    Waits on a pidfd (Linux 5.3+), which becomes readable at the exit itself. The fallback
    polls with growing sleeps, which woke a short job up to a sleep late: ~1 ms of each
    no-op job's cost in bench/dispatch.py.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self._poll = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd_open (old kernel or Python, seccomp): poll instead
            self._fd = None
        else:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)

    def exited(self) -> bool:
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def wait(self, timeout_s: float) -> bool:
        """Whether the child exited within ``timeout_s``."""
        if self._poll is not None:
            self._poll.poll(max(0, int(timeout_s * 1000)))
            return self.exited()
        deadline = time.monotonic() + timeout_s
        delay = 0.0005
        while True:
            if self.exited():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._poll = None, None


def run_attempt(argv: list[str], out_dir: str, env: Mapping[str, str], timeout_s: float = 0,
                should_stop: Callable[[], str | None] | None = None, grace_s: float = KILL_GRACE_S,
                end_orphans: bool = False, lost_grace_s: float = KILL_GRACE_S) -> AttemptResult:
    """Run ``argv`` to completion; ``should_stop`` is polled and may return an outcome that ends it early.

    Output goes to ``out_dir/log.txt``; the result is also kept in ``out_dir/attempt.json``
    when the disk allows. ``end_orphans``: this process adopted the job's orphans
    (:func:`adopt_orphans`) and ends them with the job. A stop gives the job ``grace_s`` to
    save a checkpoint, except a "lost" one (the worker died): its lease runs out soon and the
    reaper then hands the job to another worker, so it gets only ``lost_grace_s``, which must
    end before that (:func:`worker.rq_worker.lost_grace_s`).
    """
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    started = time.time()
    with open(log_file(out_dir), "ab", buffering=0) as log:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(env), cwd=out_dir, start_new_session=True, close_fds=True)
        except OSError as err:
            result = AttemptResult("failed", None, f"cannot start {argv[0]!r}: {err.strerror}", started, time.time())
            _write_result(out_dir, result)
            return result
        outcome, reason = None, ""
        watch = _ExitWatch(proc.pid)
        try:
            while not watch.wait(POLL_S):
                if end_orphans:
                    reap_exited_orphans(proc.pid)
                if timeout_s and time.time() - started > timeout_s:
                    outcome, reason = "timeout", f"timeout_s {timeout_s:g} exceeded"
                elif should_stop is not None:
                    stop = should_stop()
                    if stop:
                        outcome, reason = stop, f"stopped: {stop}"
                if outcome:
                    stop_tree(proc.pid, lost_grace_s if outcome == "lost" else grace_s)
                    break
        finally:
            watch.close()
        # Descendants that outlived the leader (daemonised helpers) must not outlive the attempt.
        # The leader is still unreaped here, so its pid (the group id) cannot belong to anyone else.
        if outcome is None:
            # It exited by itself: the kernel reparented its children as it exited, so a search for
            # them finds none (and cost ~4 ms a job reading /proc); what is left is its group.
            signal_group(proc.pid, signal.SIGKILL)
        else:
            kill_tree(proc.pid, signal.SIGKILL)
        if end_orphans:
            escaped = end_adopted(proc.pid)
            if escaped:
                log.warning("ended %d process(es) that left the job's session and outlived it", escaped)
        code = proc.wait()
    if outcome is None:
        outcome = "finished" if code == 0 else "failed"
        reason = "" if code == 0 else _describe_exit(code)
    result = AttemptResult(outcome, code, reason, started, time.time())
    _write_result(out_dir, result)
    return result


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _write_result(out_dir: str, result: AttemptResult) -> None:
    """Keep the outcome beside the outputs for people and tools; best effort, because the
    worker learns it through a pipe and a full disk must not turn a result into a crash."""
    path = attempt_file(out_dir)
    tmp = temp_file(path)
    try:
        with open(tmp, "w") as fh:
            fh.write(result.to_json())
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        log.warning("attempt.json not written in %s: %s", out_dir, err.strerror)


MAX_SUMMARY_BYTES = 64 * 1024


def read_summary(out_dir: str) -> dict[str, Any] | None:
    """The job's own result.json (its final metrics), if it wrote a JSON object of sane size."""
    path = result_file(out_dir)
    try:
        if os.path.getsize(path) > MAX_SUMMARY_BYTES:
            return None
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
