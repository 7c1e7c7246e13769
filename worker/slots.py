"""``fleet worker --slots N``: one service that runs up to N attempts at once on its host.

Each slot is a process of its own, forked from the worker's supervisor once the host is
described and Redis answers: a whole :class:`worker.rq_worker.FleetWorker` (rq knows it
as ``<worker>:<slot>``, with its own work horse per attempt, so `rq info` shows what
runs), claiming through the host's ledger like any worker, so slots can never together
reserve more than the host has. fleet knows one worker: the slots publish their own
entries inside its one registry record (`fleet status` shows ``busy 3/8``), read its one
`fleet drain` flag, and claim and renew leases under its name.

Why not rq's ``WorkerPool``: it names its workers with random uuids (so a restarted
service cannot take over its registration), builds them without fleet's runtime, polls
once a second to respawn, and stops them with SIGINT where systemd's warm stop is
SIGTERM. What it does, and this keeps, is rq's own model: one forked worker per slot.

The supervisor forwards SIGTERM and SIGINT to every slot (the first is each slot's warm
stop, a second their cold stop, as for a single worker), waits for all of them, and
restarts a slot that dies while the worker is meant to run (its attempt's lease brings
the job back meanwhile). In ``--burst`` mode a slot that finds nothing claimable waits
while a sibling is still claiming or running (that job's end may free what a pending
job needs, or release its dependants), so the worker exits only once nothing is
claimable and none of its slots is running.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from multiprocessing import RawArray
from typing import Callable

from scheduler.errors import FleetError
from scheduler.resources import HostResources
from scheduler.table import printable

log = logging.getLogger("fleet.worker")
MAX_SLOTS = 256
MAX_AUTO_SLOTS = 64  # `auto` on a CPU-only host: one per core, up to this many
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESTART_DELAY_S = 1.0  # before restarting a slot that died: a crash loop must not spin


def auto_slots(host: HostResources) -> int:
    """``--slots auto``: one per GPU on a CUDA host (a job holds at least one of them, so more
    slots would only wait); on a CPU-only host one per core, at most MAX_AUTO_SLOTS, so
    one-core jobs fill the box (the ledger still refuses what its RAM or cores cannot take)."""
    if host.gpus:
        return len(host.gpus)
    return max(1, min(host.cores, MAX_AUTO_SLOTS))


def slot_count(value: str, host: HostResources) -> int:
    """The number of slots ``--slots`` asks for on ``host`` (the CLI has checked its spelling)."""
    return auto_slots(host) if value == "auto" else int(value)


def rq_name(worker_name: str, slot: int) -> str:
    """What rq (and `rq info`) calls slot ``slot`` of worker ``worker_name``."""
    return f"{worker_name}:{slot}"


class SlotBoard:
    """Which slots are claiming or running, in memory the supervisor shares with its forked
    slots: a burst slot with nothing to claim exits only when no sibling is busy. A slot
    marks itself busy *before* it claims, so two slots that both found nothing cannot each
    see the other idle while one of them is about to take a job."""

    def __init__(self, slots: int):
        self._busy = RawArray("b", slots)

    def mark(self, slot: int, busy: bool) -> None:
        self._busy[slot] = 1 if busy else 0

    def others_busy(self, slot: int) -> bool:
        return any(flag for k, flag in enumerate(self._busy) if k != slot)


def supervise(slots: int, board: SlotBoard, run_slot: Callable[[int], int], burst: bool) -> int:
    """Fork ``slots`` processes each running ``run_slot(k)`` (its exit status), forward stop
    signals to them, restart one that dies unless stopping or in burst mode, and return the
    worst exit status once all have ended."""
    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    def forward(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def start(slot: int) -> None:
        board.mark(slot, busy=False)
        # A stop signal between the fork and the slot's entry in `children` would not reach
        # it: held back until then (a child starts with none pending).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the slot: rq installs its own signal handlers as it starts working
            code = 1
            try:
                for signum in STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                code = run_slot(slot)
            except FleetError as err:  # said in one line, as the CLI says it for a single worker
                log.error("slot %d of the worker stopped: %s", slot, printable(err))
                code = err.exit_code
            except BaseException:
                log.exception("slot %d of the worker stopped on an error", slot)
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    for slot in range(slots):
        start(slot)
    worst = 0
    while children:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        slot = children.pop(pid, None)
        if slot is None:
            continue
        board.mark(slot, busy=False)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code  # killed by a signal: the shell's spelling
        if stopping or burst:
            worst = max(worst, code)
            continue
        log.error("slot %d (pid %d) ended with status %d while the worker runs; restarting it", slot, pid, code)
        time.sleep(RESTART_DELAY_S)
        if not stopping:
            start(slot)
    return worst
