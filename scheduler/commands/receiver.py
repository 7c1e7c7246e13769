"""``fleet receiver [--manifest PATH]``: the daemon systemd runs."""

from __future__ import annotations

import argparse
import logging
from typing import TextIO

from ..manifest import locate_manifest
from ..receiver import Receiver
from .common import connect

log = logging.getLogger("fleet.receiver")


def run(args: argparse.Namespace, out: TextIO) -> int:
    path = locate_manifest(args.manifest)
    store = connect(args)
    claims = store.claims(lease_s=args.lease_s)

    def reap() -> None:
        """The receiver's tick: leases of dead workers, and the jobs rq requeued."""
        with store.errors():
            for ended in claims.reap(every_s=args.reap_interval_s):
                log.warning("job %s lost its worker (lease expired): now %s", ended.job_id, ended.state.value)
            store.absorb_rq_requeues()

    return Receiver(store, path, tick_s=args.reap_interval_s, on_tick=reap).run()
