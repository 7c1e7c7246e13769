"""``fleet prune``: archive old attempts' output dirs on this host, never the job's result unless asked."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..errors import EXIT_OK, EXIT_OPERATIONAL
from ..prune import Pruner
from ..table import render, write_line
from .common import connect, print_json

SHOW_KEPT = 20  # on a shared fleet most old attempts ran on other hosts; a screenful says why


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        pruner = Pruner(store, args.runs_dir)
        plan = pruner.plan(args.keep, args.older_than, args.include_last)
        if not args.dry_run:
            pruner.apply(plan)
    if args.json:
        print_json({"dry_run": args.dry_run, "archive_dir": plan.archive_dir,
                    "archived": [m.to_json() for m in plan.moves], "kept": [k.to_json() for k in plan.kept],
                    "failed": [f.to_json() for f in plan.failed]}, out)
        return EXIT_OPERATIONAL if plan.failed else EXIT_OK
    verb = "would move" if args.dry_run else "moved"
    if plan.moves:
        out.write(render(["JOB", "ATTEMPT", "FROM", "TO"],
                         [[m.name, m.attempt, m.source, m.target + (" (finishing an interrupted prune)"
                                                                   if m.resumed else "")]
                          for m in plan.moves], out) + "\n")
    write_line(out, f"{verb} {len(plan.moves)} attempt output dir(s) to {plan.archive_dir}")
    for k in plan.kept[:SHOW_KEPT]:
        write_line(out, f"kept {k.name} attempt {k.attempt}: {k.reason}")
    if len(plan.kept) > SHOW_KEPT:
        out.write(f"... and {len(plan.kept) - SHOW_KEPT} more kept (--json lists them all)\n")
    for f in plan.failed:
        write_line(out, f"FAILED {f.name} attempt {f.attempt}: {f.reason}")
    return EXIT_OPERATIONAL if plan.failed else EXIT_OK
