"""``fleet status`` and ``fleet jobs``: the operator's first look."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from ..states import JobState
from ..status import status_document
from ..table import age, render
from .common import connect, print_json

COUNT_ORDER = [s.value for s in JobState] + ["orphaned"]


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        data = status_document(store)
    if args.json:
        print_json(data, out)
        return 0
    counts = data["jobs"]
    total = sum(counts[s.value] for s in JobState)
    out.write(f"fleet {store.keys.namespace} @ {store.settings.safe_url()}: {total} jobs\n")
    out.write(render(["STATE", "JOBS"], [[k, counts[k]] for k in COUNT_ORDER], out, colour_column=0) + "\n\n")
    if data["workers"]:
        rows = [[w["name"], w["host"] + (" (sim)" if w["simulated"] else "") + ("" if w["declared"] else " *"),
                 w["state"], ", ".join(f'{g["name"]} {g["vram_free_gib"]:g}/{g["vram_total_gib"]:g}G'
                                       for g in w["gpus"]) or "-",
                 f'{w["ram_gib"]:.0f}G', w["cores"], w["job_id"], f'{w["heartbeat_age_s"]:.0f}s']
                for w in data["workers"]]
        out.write(render(["WORKER", "HOST", "STATE", "GPUS (free/total)", "RAM", "CORES", "JOB", "HEARTBEAT"], rows,
                         out) + "\n")
        if not all(w["declared"] for w in data["workers"]):
            out.write("* host not in the manifest's [hosts]: admitted with defaults (priority 0, no allow/deny)\n")
    else:
        out.write("no workers have registered; start one with `fleet worker`\n")
    for stuck in data["unrunnable"]:
        names = ", ".join(stuck["jobs"]) + (" ..." if stuck["pending"] > len(stuck["jobs"]) else "")
        out.write(f"\n! {stuck['pending']} pending job(s) no live worker can run: {names}"
                  f" (`fleet explain {stuck['jobs'][0] if stuck['jobs'] else 'JOB'}`)\n")
    if data["recent_failures"]:
        out.write("\nrecent failures:\n")
        for f in data["recent_failures"]:
            out.write(f"  {f['name']} on {f['host'] or '-'}: {f['reason'] or 'no reason recorded'}\n")
    return 0


def run_jobs(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    state = JobState(args.state) if args.state else None
    with store.errors():
        records = store.jobs.many(store.jobs.list_ids(state, offset=args.offset, limit=args.limit))
    if args.model:
        records = [r for r in records if r.model == args.model]
    if args.host:
        records = [r for r in records if r.host == args.host]
    if args.json:
        print_json([r.summary() for r in records], out)
        return 0
    rows = [[r.name, r.job_id, r.model, r.mode, r.state.value + ("" if r.in_manifest else " (orphaned)"),
             r.priority, r.host, age(r.state_at)] for r in records]
    out.write(render(["NAME", "JOB_ID", "MODEL", "MODE", "STATE", "PRIO", "HOST", "SINCE"], rows, out,
                     colour_column=4) + "\n")
    if len(records) == args.limit:
        out.write(f"(first {args.limit}; see more with --offset {args.offset + args.limit})\n")
    return 0
