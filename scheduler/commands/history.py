"""``fleet history``: every attempt of a time window (sacct), or its totals (``--summary``, sreport)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TextIO

from ..job_rows import duration
from ..table import render
from .common import client_from, print_json


def run(args: argparse.Namespace, out: TextIO) -> int:
    client = client_from(args)
    if args.summary:
        doc = client.history_summary(args.since, args.until, args.host, args.state)
        if args.json:
            print_json(doc, out)
            return 0
        out.write(f"from {_when(doc['since'])} to {_when(doc['until'])}\n")
        for title, key in (("HOST", "hosts"), ("MODEL", "models")):
            rows = [[t["name"], t["attempts"], f"{t['hours']:.2f}", f"{t['gpu_hours']:.2f}", f"{t['core_hours']:.2f}"]
                    for t in doc[key]]
            out.write("\n" + render([title, "ATTEMPTS", "HOURS", "GPU_HOURS", "CORE_HOURS"], rows, out) + "\n")
        return 0
    rows = client.history(args.since, args.until, args.host, args.state)
    if args.json:
        print_json(rows, out)
        return 0
    if not rows:
        out.write("no attempt ran in this window (`--since 7d` looks further back)\n")
        return 0
    table = [[r["name"], r["job_id"], r["attempt"], r["host"], r["worker"], r["gpus"] or "-", _when(r["started_at"]),
              _when(r["ended_at"]), duration(_took(r)), r["outcome"], r["exit_code"]] for r in rows]
    out.write(render(["NAME", "JOB_ID", "#", "HOST", "WORKER", "GPUS", "START", "END", "ELAPSED", "OUTCOME", "EXIT"],
                     table, out) + "\n")
    return 0


def _when(ts: float | None) -> str:
    """Local time as sacct prints it (2026-12-03T14:05:09); "-" for an attempt still running."""
    return datetime.fromtimestamp(ts).isoformat(timespec="seconds") if ts else "-"


def _took(row: dict) -> float | None:
    if row["started_at"] is None:
        return None
    end = row["ended_at"] if row["ended_at"] is not None else datetime.now().timestamp()
    return max(0.0, end - row["started_at"])
