"""Who owns a worker name: a restarted worker takes its name back at once when its predecessor
is dead, and never while it lives.

A worker's name keys its registry record, its leases and (with ``:<slot>``) rq's worker
records, so two live workers under one name would run jobs as one. A predecessor counts as
alive while its record heartbeated within its lease, except when that record was published
from this same machine by processes that no longer exist: then it crashed (SIGKILL, OOM
killer, power loss), and systemd's `Restart=always` with a fixed `--name %H` can take the
name over at once instead of failing until the lease runs out. The attempts it was running
are not touched: their leases run out and the reaper hands them back as lost, as for any
dead worker.
"""

from __future__ import annotations

import socket
import time

import psutil

from scheduler.errors import UsageError
from scheduler.keys import Keys
from scheduler.store.workers import owner_processes, worker_info


def _running(pid: int) -> bool:
    """Whether ``pid`` runs here: a zombie (killed, not yet reaped: a SIGKILLed worker's slots
    wait for whoever inherits them) does not. Another user's process counts as running: it may
    be a reused pid, and then the lease decides, as before."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def predecessor_dead_here(redis, keys: Keys, name: str) -> bool:
    """Whether worker ``name``'s record was published on this machine by processes none of
    which runs any more (its supervisor and slots included)."""
    node, pids = owner_processes(redis, keys, name)
    return node == socket.gethostname() and bool(pids) and not any(_running(pid) for pid in pids)


def check_name_free(redis, keys: Keys, name: str) -> None:
    """Refuse to start a worker under the name of one that is still alive (its record heartbeated
    within its lease, is not stopped, and was not left by dead processes on this machine)."""
    info = worker_info(redis, keys, name)
    if info is not None and info.live and not predecessor_dead_here(redis, keys, name):
        raise UsageError(f"a live worker named {name!r} heartbeated {info.heartbeat_age(time.time()):.0f}s ago; "
                         f"stop it or pick another --name")
