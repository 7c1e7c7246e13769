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
