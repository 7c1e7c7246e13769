"""Keep the worker's Redis password from the jobs it runs.

A job's parent is rq's work horse, a fork of the worker, so it shares the worker's
environment block and memory. A job could read ``FLEET_REDIS_URL`` straight from
``/proc/$PPID/environ``: jobs are given an environment without it, but the horse's own
still held it. Removing it from ``os.environ`` is not enough: ``unsetenv`` only drops the
pointer from the C ``environ`` array, and ``/proc/PID/environ`` shows the bytes of the
block the process started with. So :func:`hide_from_jobs` overwrites the value's bytes,
then drops the variable, then marks the process non-dumpable, which a fork inherits: a job
running as the same non-root user can then read neither the worker's nor the horse's
memory or environment (``/proc/PPID/mem``, ``/proc/PPID/environ``). Root can still read
both; a root job can read anything on the host anyway.

Called once, in the worker, after its settings are built and before any job starts
(``scheduler/commands/worker.py``); its own process's memory is all it touches.
"""

from __future__ import annotations

import ctypes
import logging
import os

from scheduler.libc import LIBC, prctl

log = logging.getLogger("fleet.worker")

SECRET_VARIABLES = ("FLEET_REDIS_URL",)
PR_SET_DUMPABLE = 4  # linux/prctl.h


def hide_from_jobs(names: tuple[str, ...] = SECRET_VARIABLES) -> None:
    """Wipe ``names`` from this process's environment, bytes included, and make it non-dumpable.

    Where there is no C library, no ``environ`` or no ``prctl`` (not Linux), it does what
    it can, the ``os.environ`` part at least, and says what it could not at debug level."""
    wiped = _wipe_environ(LIBC, names) if LIBC is not None and hasattr(LIBC, "environ") else None
    for name in names:
        os.environ.pop(name, None)
    if wiped is None:
        log.debug("no C environ to overwrite: %s removed from os.environ only", ", ".join(names))
    if not prctl(PR_SET_DUMPABLE, 0):
        log.debug("prctl(PR_SET_DUMPABLE, 0) not done (%s): this worker stays dumpable; same-user jobs can read "
                  "its memory", os.strerror(ctypes.get_errno()) if LIBC is not None else "no C library")


def _wipe_environ(libc: ctypes.CDLL, names: tuple[str, ...]) -> int:
    """Zero the value bytes of every ``NAME=value`` entry of the C ``environ`` array, in place;
    returns how many. Only the value: the ``NAME=`` left lets the caller's unsetenv drop the
    entry, and no libc frees an entry before that (musl may after, so nothing touches it then)."""
    entries = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    prefixes = [f"{name}=".encode() for name in names]
    wiped = 0
    index = 0
    while entries[index]:
        address = entries[index]
        text = ctypes.string_at(address)
        for prefix in prefixes:
            if text.startswith(prefix):
                ctypes.memset(address + len(prefix), 0, len(text) - len(prefix))
                wiped += 1
        index += 1
    return wiped
