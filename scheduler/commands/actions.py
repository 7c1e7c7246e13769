"""``fleet cancel|retry|hold|release JOB...`` (or filters) and ``fleet drain WORKER``."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..client import job_filter
from ..errors import EXIT_OK, EXIT_USAGE, UsageError
from ..table import printable, write_line
from .common import client_from, print_json

# An action that filters select more jobs than this, typed on a terminal, needs --yes: a glob
# that matches more than meant should be seen before it changes anything.
CONFIRM_OVER = 20
LISTED = 10  # the jobs named in "hold: 57 job(s): a, b, ... +47 more"


def run_action(args: argparse.Namespace, out: TextIO) -> int:
    """All or nothing (see scheduler.store.actions.apply_action): one job the action does not apply to
    and no job changes; each refusal is said, and the exit status is 2."""
    client = client_from(args)
    selection = job_filter(args.state, args.name, args.model, args.host, args.worker)
    ids = client.select(args.command, args.jobs, selection)
    if not selection.empty:
        names = client.store.jobs.names(ids[:LISTED])
        shown = ", ".join(printable(names.get(i, i)) for i in ids[:LISTED])
        more = f" +{len(ids) - LISTED} more" if len(ids) > LISTED else ""
        (sys.stderr if args.json else out).write(f"{args.command}: {len(ids)} job(s) match"
                                                 f"{': ' + shown + more if ids else ''}\n")
        if not ids:
            return EXIT_OK
        if len(ids) > CONFIRM_OVER and not args.yes and sys.stdin.isatty():
            raise UsageError(f"{args.command} would touch {len(ids)} jobs (more than {CONFIRM_OVER}); check the "
                             f"list above and run it again with --yes")
    results = client.apply(args.command, ids, reset=getattr(args, "reset", False))
    if args.json:
        print_json(results, out)
    else:
        for r in results:
            what = f"{r['from']} -> {r['to']}" if r["ok"] and r["from"] != r["to"] else ""
            write_line(out, f"{r['name'] or r['job_id']} ({r['job_id']}): {'ok' if r['ok'] else 'refused'}"
                            f"{': ' + what if what else ''}{'; ' + r['message'] if r['message'] else ''}")
        if not all(r["ok"] for r in results) and len(results) > 1:
            out.write(f"nothing changed: {args.command} applies to every job named or to none; leave out the "
                      f"refused ones and run it again\n")
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_USAGE


def run_drain(args: argparse.Namespace, out: TextIO) -> int:
    if args.undo and args.reason:
        raise UsageError("--reason goes with a drain, not with --undo")
    client_from(args).drain(args.worker, undo=args.undo, reason=args.reason or "")
    said = "resumed" if args.undo else "draining: finishes what it runs, claims no more"
    write_line(out, f"{args.worker}: {said}" + (f" ({args.reason})" if args.reason else ""))
    return EXIT_OK
