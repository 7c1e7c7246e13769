"""``fleet status`` and ``fleet jobs``: the operator's first look."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from ..states import JobState
from ..status import status_document
from ..table import age, render, write_line
from .common import connect, print_json, write_workers

COUNT_ORDER = [s.value for s in JobState] + ["orphaned"]


WATCH_INTERVAL_S = 2.0


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    if not args.watch:
        return _status_once(store, args, out)
    try:
        while True:
            if out.isatty():
                out.write("\033[H\033[J")  # home + clear: redraw in place
            _status_once(store, args, out)
            out.write(f"\n(refreshing every {WATCH_INTERVAL_S:g}s; Ctrl-C to quit)\n")
            out.flush()
            time.sleep(WATCH_INTERVAL_S)
    except KeyboardInterrupt:
        return 0


def _status_once(store, args: argparse.Namespace, out: TextIO) -> int:
    with store.errors():
        data = status_document(store)
    if args.json:
        print_json(data, out)
        return 0
    counts = data["jobs"]
    total = sum(counts[s.value] for s in JobState)
    write_line(out, f"namespace {store.keys.namespace} @ {store.settings.safe_url()}: {total} jobs")
    load = data["load"]
    if load and load["claims_wait"]:
        write_line(out, f"! a manifest load is being applied (step {load['step'] + 1} of {load['steps']}): no job is "
                        f"claimed until it is done" + ("; its loader stopped, the next claim or `fleet load` "
                                                       "finishes it" if load["interrupted"] else ""))
    elif load:
        write_line(out, f"a manifest load is being planned ({load['phase']})")
    out.write(render(["STATE", "JOBS"], [[k, counts[k]] for k in COUNT_ORDER], out, colour_column=0) + "\n\n")
    if data["workers"]:
        write_workers(data["workers"], out)
        if not all(w["declared"] for w in data["workers"]):
            out.write("* host not in the manifest's [hosts]: admitted with defaults (priority 0, no allow/deny)\n")
    else:
        out.write("no workers have registered; start one with `fleet worker`\n")
    for stuck in data["unrunnable"]:
        names = ", ".join(stuck["jobs"]) + (" ..." if stuck["pending"] > len(stuck["jobs"]) else "")
        out.write("\n")
        write_line(out, f"! {stuck['pending']} pending job(s) no live worker can run: {names}"
                        f" (`fleet explain {stuck['jobs'][0] if stuck['jobs'] else 'JOB'}`)")
    if data["recent_failures"]:
        out.write("\nrecent failures:\n")
        for f in data["recent_failures"]:
            write_line(out, f"  {f['name']} on {f['host'] or '-'}: {f['reason'] or 'no reason recorded'}")
    return 0


def run_jobs(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    state = JobState(args.state) if args.state else None
    with store.errors():
        records = _filtered_page(store, state, args)
    if args.json:
        print_json([r.summary() for r in records], out)
        return 0
    rows = [[r.name, r.job_id, r.model, r.mode, r.state.value + ("" if r.in_manifest else " (orphaned)"),
             r.priority, r.host, age(r.state_at)] for r in records]
    out.write(render(["NAME", "JOB_ID", "MODEL", "MODE", "STATE", "PRIO", "HOST", "SINCE"], rows, out,
                     colour_column=4) + "\n")
    if len(records) == args.limit:
        out.write(f"(first {args.limit} from offset {args.offset}; more with --offset {args.offset + args.limit})\n")
    return 0


def _filtered_page(store, state: JobState | None, args: argparse.Namespace) -> list:
    """``--limit`` matching jobs after skipping ``--offset`` matches, newest activity first.

    The state filter uses the per-state index; host and model filters read pages of
    the index until enough jobs match, so paging means the same thing with or without them.
    """
    def matches(record) -> bool:
        return (not args.model or record.model == args.model) and (not args.host or record.host == args.host)

    if not args.model and not args.host:
        return store.jobs.many(store.jobs.list_ids(state, offset=args.offset, limit=args.limit))
    found, skipped, cursor, page = [], 0, 0, 500
    while len(found) < args.limit:
        ids = store.jobs.list_ids(state, offset=cursor, limit=page)
        if not ids:
            break
        cursor += len(ids)
        for record in store.jobs.many(ids):
            if not matches(record):
                continue
            if skipped < args.offset:
                skipped += 1
                continue
            found.append(record)
            if len(found) == args.limit:
                break
    return found
