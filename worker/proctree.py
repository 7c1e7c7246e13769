"""The process tree of an attempt: its group, the orphans it leaves, ending all of them.

A job runs as the leader of its own process group (``worker/runner.py`` starts it with
``start_new_session``), so one signal reaches everything that stayed in the group; a
descendant that left it (``setsid``, a daemon's double fork) is found as a descendant or,
once orphaned, as a child of the process that adopted it (:func:`adopt_orphans`). Two
processes use this: the work horse, to stop its job's tree, and the worker, to end what a
dead horse left behind (``worker/rq_worker.py``). Everything here acts on pids that cannot
have been reused: children not yet reaped, or processes just listed.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Callable

import psutil

from scheduler.libc import prctl

KILL_GRACE_S = 5.0  # how long a stopped job may take to save a checkpoint before SIGKILL
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
ADOPTED_KILL_ROUNDS = 5  # an orphan that forks as it dies leaves new orphans: look again, this often
REAP_WAIT_S = 1.0  # a SIGKILLed process stuck in the kernel (D state) is left to init after this


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


def stop_tree(leader_pid: int, grace_s: float = KILL_GRACE_S, cut_short: Callable[[], bool] | None = None) -> None:
    """SIGTERM the group, give it up to ``grace_s`` to save a checkpoint, then SIGKILL whatever is left;
    ``cut_short`` returning True ends the grace at once (a second SIGTERM to the worker).

    The grace ends as soon as no member is left running: an unreaped (zombie) leader still
    counts for ``killpg(pgid, 0)``, which made every stop wait out the whole grace."""
    kill_tree(leader_pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_running(leader_pid):
            return
        if cut_short is not None and cut_short():
            break
        time.sleep(0.05)
    kill_tree(leader_pid, signal.SIGKILL)


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux 3.4+), so a helper that
    escaped the job's session becomes its child instead of init's and can still be ended.

    Two processes do this: the work horse, whose sole child is the job (:func:`worker.runner.run_attempt`
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


class ExitWatch:
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
