"""``fleet cancel|retry|hold|release JOB...`` and ``fleet drain WORKER``."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..errors import EXIT_OK, EXIT_USAGE, NotFoundError
from ..table import write_line
from .common import connect, print_json


def run_action(args: argparse.Namespace, out: TextIO) -> int:
    """All or nothing (see scheduler.store.actions.apply_action): one job the action does not apply to
    and no job changes; each refusal is said, and the exit status is 2."""
    store = connect(args)
    with store.errors():
        refs = {store.jobs.resolve(ref): ref for ref in args.jobs}  # all resolved before anything changes
        results = store.apply_action(args.command, list(refs), reset=getattr(args, "reset", False))
        names = store.jobs.names(list(refs))
    if args.json:
        print_json([{"job_id": r.job_id, "name": names.get(r.job_id), "ok": r.ok, "from": r.from_state,
                     "to": r.to_state, "message": r.message} for r in results], out)
    else:
        for r in results:
            what = f"{r.from_state} -> {r.to_state}" if r.ok and r.from_state != r.to_state else ""
            write_line(out, f"{names.get(r.job_id, refs[r.job_id])} ({r.job_id}): {'ok' if r.ok else 'refused'}"
                            f"{': ' + what if what else ''}{'; ' + r.message if r.message else ''}")
        if not all(r.ok for r in results) and len(results) > 1:
            out.write(f"nothing changed: {args.command} applies to every job named or to none; leave out the "
                      f"refused ones and run it again\n")
    return EXIT_OK if all(r.ok for r in results) else EXIT_USAGE


def run_drain(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        if not store.drain(args.worker, undo=args.undo):
            raise NotFoundError(f"no worker named {args.worker!r}; list them with `fleet status`")
    write_line(out, f"{args.worker}: {'resumed' if args.undo else 'draining: finishes its current job, claims no more'}")
    return EXIT_OK
