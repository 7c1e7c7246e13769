"""``fleet status`` and ``fleet jobs``: the operator's first look."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from ..states import JobState
from ..store.workers import list_workers
from ..table import age, render
from .common import connect, print_json
from .jobinfo import run_workers

COUNT_ORDER = [s.value for s in JobState] + ["orphaned"]


def status_data(store) -> dict:
    """The ``fleet status --json`` document; a fixed number of round trips whatever the store's size."""
    now = time.time()
    with store.errors():
        counts = store.jobs.counts()
        workers = list_workers(store.redis, store.keys, now)
    return {"jobs": counts, "workers": [w.to_json(now) for w in workers]}


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    data = status_data(store)
    if args.json:
        print_json(data, out)
        return 0
    counts = data["jobs"]
    total = sum(counts[s.value] for s in JobState)
    out.write(f"fleet {store.keys.namespace} @ {store.settings.safe_url()}: {total} jobs\n")
    out.write(render(["STATE", "JOBS"], [[k, counts[k]] for k in COUNT_ORDER], out, colour_column=0) + "\n")
    out.write("\n")
    return run_workers(args, out)


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
