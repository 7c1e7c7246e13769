"""The receiver daemon: keeps Redis in step with the manifest.

Loads at start, reloads on SIGHUP (``systemctl reload``), stops on SIGTERM/SIGINT.
A manifest that fails validation on reload, or would orphan most of the fleet, is
logged in full and the previous load keeps serving: a typo must never empty a
running fleet. Signal handlers only set flags; the loop does the work.
"""

from __future__ import annotations

import logging
import os
import select
import signal
from typing import Callable

from . import sdnotify
from .errors import FleetError, ManifestError, StoreError
from .manifest import load_manifest
from .plan_text import plan_lines
from .store import Store

log = logging.getLogger("fleet.receiver")

MAX_BACKOFF_S = 30.0


class _Wakeup:
    """A self-pipe: the one wake-up a signal handler can send without taking a lock.

    ``threading.Event.set()`` takes the event's non-reentrant lock; a signal landing
    while the main thread holds it (inside ``wait()`` or ``clear()``) deadlocked the
    receiver for good, SIGTERM included. ``os.write`` to a non-blocking pipe takes none.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is already pending

    def wait(self, timeout: float) -> None:
        select.select([self._read], [], [], timeout)

    def clear(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass


class Receiver:
    def __init__(self, store: Store, manifest_path: str, tick_s: float = 1.0,
                 on_tick: Callable[[], None] | None = None):
        self.store = store
        self.manifest_path = manifest_path
        self.tick_s = tick_s
        self.on_tick = on_tick  # periodic duties (the lease reaper) plug in here
        self._wake = _Wakeup()
        self._reload_requested = False
        self._stop_requested = False

    # -- signals: flags only ------------------------------------------------------
    def request_reload(self, *_: object) -> None:
        self._reload_requested = True
        self._wake.set()

    def request_stop(self, *_: object) -> None:
        self._stop_requested = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGHUP, self.request_reload)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # -- work ---------------------------------------------------------------------
    def load_once(self) -> bool:
        """Validate and apply the manifest; False (logged) if it was rejected or Redis failed."""
        try:
            manifest = load_manifest(self.manifest_path)
        except ManifestError as err:
            self._log_rejected(err)
            return False
        except Exception:  # noqa: BLE001 - deliberately broad, and logged in full
            # The last line of defence: a manifest that trips a bug in validation (as a deep table's
            # RecursionError once did) must cost this reload, not the daemon. Exiting would stop
            # the reaper and, under Restart=on-failure, crash-loop on the same file. Validation
            # writes nothing, so the previous load is intact and keeps serving.
            log.exception("manifest %s could not be validated (a bug in fleet; please report it with this "
                          "traceback), keeping the previous load:", self.manifest_path)
            return False
        try:
            plan = self.store.load(manifest)  # never allow_orphaning: that takes an operator's `fleet load`
        except ManifestError as err:  # it would orphan most of the fleet: nothing was written
            self._log_rejected(err)
            return False
        except StoreError as err:
            log.error("%s", err)
            return False
        lines = plan_lines(plan, manifest.sweeps)
        # Orphaning jobs retires work: an operator must see it even in a log filtered to warnings.
        (log.warning if plan.orphaned else log.info)("loaded %s: %s", self.manifest_path, lines[0])
        for line in lines[1:]:
            loud = line.startswith("warning") or (plan.orphaned and line.lstrip().startswith("orphaned"))
            (log.warning if loud else log.info)("%s", line)
        return True

    def _log_rejected(self, err: ManifestError) -> None:
        log.error("manifest %s rejected, keeping the previous load (%d problems):", self.manifest_path,
                  len(err.problems))
        for problem in err.problems:
            log.error("  %s", problem)

    def warn_if_not_persistent(self) -> None:
        """Say once, at start, when Redis keeps fleet's state only in memory: a restart of that
        Redis would lose every job's state (what ran, what is left)."""
        try:
            with self.store.errors():
                appendonly, save = self.store.persistence()
        except StoreError as err:
            log.debug("could not read Redis's persistence settings: %s", err)
            return
        if appendonly is None:
            log.info("Redis does not show its persistence settings (CONFIG is disabled, as on managed Redis); make "
                     "sure it persists (AOF), or a restart of it loses every job's state")
        elif appendonly != "yes" and not save:
            log.warning("Redis at %s persists nothing (appendonly no, no save points): a restart of it loses every "
                        "job's state; set `appendonly yes` and `appendfsync everysec` in its redis.conf (README: "
                        "Running it with systemd)", self.store.settings.safe_url())
        elif appendonly != "yes":
            log.warning("Redis at %s persists only by snapshots (save %s): a crash loses what changed since the last "
                        "one (jobs finished then run again); set `appendonly yes` and `appendfsync everysec` "
                        "(README: Running it with systemd)", self.store.settings.safe_url(), save)

    def run(self) -> int:
        """Serve until SIGTERM; returns the process exit code."""
        self.install_signal_handlers()
        self.warn_if_not_persistent()
        backoff = 0.5
        while not self.load_once():
            if self._stop_requested:
                return 1
            log.info("retrying the first load in %.1fs (fix the manifest and SIGHUP, or wait)", backoff)
            self._wake.wait(backoff)
            self._wake.clear()
            self._reload_requested = False
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        sdnotify.notify("READY=1")
        log.info("receiver ready (redis %s, namespace %s)", self.store.settings.safe_url(), self.store.keys.namespace)
        while not self._stop_requested:
            self._wake.wait(self.tick_s)
            self._wake.clear()
            if self._stop_requested:
                break
            if self._reload_requested:
                self._reload_requested = False
                sdnotify.reloading()
                log.info("SIGHUP: reloading %s", self.manifest_path)
                self.load_once()
                sdnotify.notify("READY=1")
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except FleetError as err:
                    log.error("periodic duty failed: %s", err)
        sdnotify.notify("STOPPING=1")
        log.info("receiver stopped")
        return 0
