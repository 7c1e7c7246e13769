"""The C library, for what Python does not wrap: ``prctl`` and the process's ``environ``.

In ``scheduler`` because both sides need it: the worker (its subreaper, ``worker/proctree.py``;
hiding its password, ``worker/secrecy.py``) and the commands that start children which must
not outlive them (``fleet demo``'s processes, the embedded redis-server), and ``scheduler``
never imports ``worker``. Loaded once, at import in the worker, and inherited by every work
horse it forks: loading it in each horse cost ~0.2 ms of every job.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # no C library to load
        return None


LIBC = _load()


def prctl(option: int, arg: int) -> bool:
    """``prctl(option, arg)``; False where there is no prctl (not Linux) or the call failed
    (``ctypes.get_errno()`` says why)."""
    return LIBC is not None and hasattr(LIBC, "prctl") and LIBC.prctl(option, arg, 0, 0, 0) == 0


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """A ``preexec_fn``: have the kernel send this child ``sig`` when its parent ``parent_pid``
    (strictly, the parent's thread that forked it) dies, even by SIGKILL, when none of the
    parent's cleanup runs: reparented to init, the child would otherwise run on for good. It
    survives the exec; the child's own children do not inherit it. A parent that died before the
    call gets the child ``sig`` at once. Does nothing where there is no prctl (not Linux)."""
    if prctl(PR_SET_PDEATHSIG, sig) and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
