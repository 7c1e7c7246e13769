"""``fleet status`` and ``fleet jobs``: the operator's first look."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from ..client import Client
from ..job_rows import duration
from ..states import JobState
from ..table import age, render, write_line
from .common import client_from, print_json, write_workers

COUNT_ORDER = [s.value for s in JobState] + ["orphaned"]


WATCH_INTERVAL_S = 2.0


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    client = client_from(args)
    if not args.watch:
        return _status_once(client, args, out)
    try:
        while True:
            if out.isatty():
                out.write("\033[H\033[J")  # home + clear: redraw in place
            _status_once(client, args, out)
            out.write(f"\n(refreshing every {WATCH_INTERVAL_S:g}s; Ctrl-C to quit)\n")
            out.flush()
            time.sleep(WATCH_INTERVAL_S)
    except KeyboardInterrupt:
        return 0


def _status_once(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    data = client.status()
    if args.json:
        print_json(data, out)
        return 0
    store = client.store
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
        write_line(out, f"! {stuck['pending']} pending job(s) no live worker can run: {names} ({stuck['reason']}; "
                        f"`fleet explain {stuck['jobs'][0] if stuck['jobs'] else 'JOB'}`)")
    if data["recent_failures"]:
        out.write("\nrecent failures:\n")
        for f in data["recent_failures"]:
            write_line(out, f"  {f['name']} on {f['host'] or '-'}: {f['reason'] or 'no reason recorded'}")
    return 0


JOB_COLUMNS = ["NAME", "JOB_ID", "MODEL", "MODE", "STATE", "PRIO", "HOST", "SINCE", "ELAPSED", "PROGRESS", "REASON"]


def run_jobs(args: argparse.Namespace, out: TextIO) -> int:
    client = client_from(args)
    rows = client.jobs(state=args.state, name=args.name, model=args.model, host=args.host, worker=args.worker,
                       limit=args.limit, offset=args.offset)
    if args.json:
        print_json(rows, out)
        return 0
    now = time.time()
    table = [[r["name"], r["job_id"], r["model"], r["mode"], r["state"] + ("" if r["in_manifest"] else " (orphaned)"),
              r["priority"], r["host"], age(r["state_at"], now), duration(r["elapsed_s"]), r["progress"], r["reason"]]
             for r in rows]
    out.write(render(JOB_COLUMNS, table, out, colour_column=4) + "\n")
    if len(rows) == args.limit:
        out.write(f"(first {args.limit} from offset {args.offset}; more with --offset {args.offset + args.limit})\n")
    return 0
