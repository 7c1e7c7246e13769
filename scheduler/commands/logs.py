"""``fleet logs JOB [-f] [--attempt N]``: an attempt's output, from anywhere, as it comes."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..states import JobState
from ..table import printable, write_line
from .common import connect

FOLLOW_BLOCK_MS = 1000


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        record, attempt = store.jobs.resolve_attempt(args.job, args.attempt)
        last = "0-0"
        for last, line in store.streams.log(record.job_id, attempt):
            _write(out, line, args.raw)
        if not args.follow and not store.streams.has_log(record.job_id, attempt):
            write_line(out, f"(no output recorded for attempt {attempt}; the full log is log.txt in its output dir "
                            f"on {record.host})")
        while args.follow:
            lines = store.streams.follow_log(record.job_id, attempt, last, block_ms=FOLLOW_BLOCK_MS, count=500)
            for last, line in lines:
                _write(out, line, args.raw)
            if not lines:
                current = store.jobs.get(record.job_id)
                if current.state is not JobState.RUNNING or current.attempts != attempt:
                    break
    return 0


def _write(out: TextIO, line: str, raw: bool) -> None:
    """One line of the job's output; its terminal controls escaped (tabs kept) unless ``raw``."""
    out.write((line if raw else printable(line, keep="\t")) + "\n")
    out.flush()
