"""``fleet receiver [--manifest PATH]``: the daemon systemd runs."""

from __future__ import annotations

import argparse
import logging
import time
from typing import TextIO

from ..manifest import locate_manifest
from ..receiver import Receiver
from .common import connect

log = logging.getLogger("fleet.receiver")


def run(args: argparse.Namespace, out: TextIO) -> int:
    path = locate_manifest(args.manifest)
    store = connect(args)
    claims = store.claims(lease_s=args.lease_s)

    rq_cleared = [0.0]

    def reap() -> None:
        """The receiver's tick: leases of dead workers, the jobs rq requeued, and, once a lease,
        dead workers in rq's worker registry (so `rq info` does not list them as busy)."""
        with store.errors():
            for ended in claims.reap(every_s=args.reap_interval_s):
                log.warning("job %s lost its worker (lease expired): now %s", ended.job_id, ended.state.value)
            store.absorb_rq_requeues()
            if time.monotonic() - rq_cleared[0] >= args.lease_s:
                rq_cleared[0] = time.monotonic()
                store.clear_dead_rq_workers()

    return Receiver(store, path, tick_s=args.reap_interval_s, on_tick=reap).run()
