"""``fleet logs JOB [-f] [--attempt N]``: an attempt's output, from anywhere, as it comes."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..states import JobState
from ..table import printable, write_line
from .common import connect, job_attempt

FOLLOW_BLOCK_MS = 1000


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        record, attempt = job_attempt(store, args.job, args.attempt)
        key = store.keys.log(record.job_id, attempt)
        last = "0-0"
        for entry_id, fields in store.redis.xrange(key):
            _write(out, fields, args.raw)
            last = entry_id
        if not store.redis.exists(key) and not args.follow:
            write_line(out, f"(no output recorded for attempt {attempt}; the full log is log.txt in its output dir "
                            f"on {record.host})")
        while args.follow:
            reply = store.redis.xread({key: last}, block=FOLLOW_BLOCK_MS, count=500)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    _write(out, fields, args.raw)
                    last = entry_id
            if not reply:
                current = store.jobs.get(record.job_id)
                if current.state is not JobState.RUNNING or current.attempts != attempt:
                    break
    return 0


def _write(out: TextIO, fields: dict, raw: bool) -> None:
    """One line of the job's output; its terminal controls escaped (tabs kept) unless ``raw``."""
    line = fields.get(b"line", b"").decode("utf-8", errors="replace")
    out.write((line if raw else printable(line, keep="\t")) + "\n")
    out.flush()
