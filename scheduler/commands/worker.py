"""``fleet worker``: probe this box (or read a host profile), then claim and run jobs through rq."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import time
from dataclasses import replace
from typing import TextIO

from worker.secrecy import hide_from_jobs

from ..errors import UsageError
from ..keys import Keys
from ..names import HOST_RE, WORKER_NAME_RE
from ..rq_prefix import use_rq_prefix
from .common import connect

log = logging.getLogger("fleet.worker")


# Worker names become keys and table cells; the default is "<host>.<short hostname>.<pid>".


def describe_host(args: argparse.Namespace, with_links: bool = True):
    """The host this worker offers: a declared profile, or a real probe (``with_links``: see
    :func:`worker.gpus.probe_gpus`)."""
    if args.host_name is not None and not HOST_RE.fullmatch(args.host_name):
        raise UsageError(f"--host-name {args.host_name!r}: must be 1-63 letters, digits, '_', '.' or '-', as "
                         f"`hostname -s` prints and [hosts] names it")
    if args.host_profile:
        from worker.host_profile import load_host_profile, select_gpus

        host = load_host_profile(args.host_profile)
        if args.gpu:  # --gpu 2,0: the profile's GPUs 2 and 0, seen as 0 and 1
            host = select_gpus(host, args.gpu, args.host_profile)
        if args.host_name:
            host = replace(host, hostname=args.host_name)
        return host
    from worker.probe import probe_host

    return probe_host(args.host_name, gpu_indices=args.gpu or None, with_links=with_links)


def _live_host(args: argparse.Namespace, first, max_age_s: float = 1.0):
    """The host as the claim should see it: real GPUs are re-probed (free VRAM changes as other
    processes use the cards), at most once a second, keeping the first probe's links;
    simulated and CPU-only hosts never change."""
    if first.simulated or not first.gpus:
        return lambda: first
    state = {"host": first, "at": time.monotonic()}

    def current():
        if time.monotonic() - state["at"] > max_age_s:  # free memory moves; the links do not
            state["host"] = replace(describe_host(args, with_links=False), links=first.links)
            state["at"] = time.monotonic()
        return state["host"]
    return current


def run(args: argparse.Namespace, out: TextIO) -> int:
    host = describe_host(args)  # a bad --host-profile is reported before Redis is even tried
    name = args.name or f"{host.hostname}.{socket.gethostname().split('.')[0]}.{os.getpid()}"
    if not WORKER_NAME_RE.fullmatch(name):
        raise UsageError(f"worker name {name!r}: must be 1-128 letters, digits, '_', '.', '@', ':' or '-'; "
                         f"pick another --name")
    from worker.slots import MAX_SLOTS, slot_count

    slots = slot_count(args.slots, host)
    if slots > MAX_SLOTS:
        raise UsageError(f"--slots {slots}: at most {MAX_SLOTS} attempts at once per worker; pick fewer")
    store = connect(args)
    hide_from_jobs()  # the settings are built and no job has started: FLEET_REDIS_URL is needed no more
    use_rq_prefix(store.keys)
    for note in host.notes:
        log.info("probe: %s", note)
    runs_dir = os.path.abspath(args.runs_dir)
    try:
        os.makedirs(runs_dir, mode=0o700, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--runs-dir {runs_dir}: cannot create it ({err.strerror}); pick a writable "
                         f"directory") from None
    log.info("worker %s on %s: %d cores, %.1f GiB RAM, %s%s; lease %.1fs; %s; runs in %s", name, host.hostname,
             host.cores, host.ram_total_gib,
             ", ".join(f"{g.name} {g.vram_total_gib:g} GiB" for g in host.gpus) or "no CUDA",
             " (simulated)" if host.simulated else "", args.lease_s,
             f"{slots} slots" if slots > 1 else "one job at a time", runs_dir)
    from worker.naming import check_name_free

    with store.errors():
        check_name_free(store.redis, store.keys, name)
        if slots == 1:
            return _work(args, store, host, name, runs_dir)
    from worker.slots import SlotBoard, supervise

    board = SlotBoard(slots)

    def run_slot(slot: int) -> int:  # in the slot's own process: its Redis connections are its own
        with store.errors():
            return _work(args, store, host, name, runs_dir, slot=slot, slots=slots, board=board)
    return supervise(slots, board, run_slot, burst=args.burst)


def _work(args: argparse.Namespace, store, host, name: str, runs_dir: str, slot: int | None = None,
          slots: int = 1, board=None) -> int:
    """One rq worker claiming for worker ``name``: the whole worker, or one of its slots."""
    from scheduler.store.claims import Claims
    from worker.claim import Claimer
    from worker.disk import DiskGate
    from worker.rq_worker import FleetWorker, heartbeat_interval_s, idle_look_s, renewal_interval_s
    from worker.runtime import WorkerRuntime
    from worker.slots import rq_name

    keys: Keys = store.keys
    lease_s = args.lease_s
    claims = Claims(store.redis, keys, lease_s=lease_s, confirm_on_replica=store.settings.sentinel)
    loop = Claimer(store, claims, name, _live_host(args, host), look_every_s=idle_look_s(lease_s))
    host_info = {"simulated": "1" if host.simulated else "0", "resources": host.to_json(), "lease_s": lease_s}
    runtime = WorkerRuntime(store.redis, keys, claims, loop, host.hostname, runs_dir, host_info,
                            heartbeat_s=heartbeat_interval_s(lease_s), worker_name=name, gpus=host.gpus,
                            redis_url=store.settings.redis_url,
                            disk_gate=DiskGate(runs_dir, args.min_free_disk_mib), slot=slot, slots=slots)
    worker = FleetWorker([runtime.queue], name=name if slot is None else rq_name(name, slot),
                         connection=store.redis, fleet=runtime, board=board,
                         job_monitoring_interval=renewal_interval_s(lease_s))
    worker.stop_now = args.stop_now
    worker.work(burst=args.burst, logging_level="DEBUG" if getattr(args, "debug", False) else "WARNING")
    return runtime.exit_code
