"""systemd's sd_notify protocol without libsystemd: one datagram to $NOTIFY_SOCKET.

``Type=notify`` units learn READY=1 / RELOADING=1 / STOPPING=1 from here; outside
systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("fleet.sdnotify")


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1"); returns whether it was delivered to a socket."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        # Like libsystemd's sd_notify: a stale or missing socket is reported, never fatal.
        log.warning("sd_notify to %s failed (%s); continuing without it", environ.get("NOTIFY_SOCKET"), err)
        return False
    return True


def reloading() -> bool:
    """RELOADING=1 with the MONOTONIC_USEC systemd >= 253 asks for alongside it."""
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


# The variables systemd hands a service for the protocol. A job must never see them: with
# NotifyAccess=all (a --slots worker's slots report from child processes) a job could tell
# systemd the worker is ready, stopping, or alive.
NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_last_ping = [0.0]


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """How often to ping systemd's watchdog: a third of WatchdogSec= (WATCHDOG_USEC), as
    sd_watchdog_enabled(3) advises half at most; None when no watchdog is asked for."""
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 3e6 if usec > 0 and environ.get("NOTIFY_SOCKET") else None


def keepalive(now: float | None = None) -> bool:
    """WATCHDOG=1, at most once per :func:`watchdog_interval_s`; called from every loop a worker
    may wait in (for work, on a job, through a Redis outage), so systemd restarts a worker only
    when it is truly stuck. Returns whether a ping was sent."""
    interval = watchdog_interval_s()
    now = time.monotonic() if now is None else now
    if interval is None or now - _last_ping[0] < interval:
        return False
    _last_ping[0] = now
    return notify("WATCHDOG=1")
