"""``fleet explain JOB``: why a job is where it is."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..explain import explain
from ..store.claims import Claims
from ..store.workers import list_workers
from ..table import write_line
from .common import connect, print_json


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        record = store.jobs.get(store.jobs.resolve(args.job))
        attempts = Claims(store.redis, store.keys).attempts(record.job_id)
        result = explain(store.redis, store.keys, record, list_workers(store.redis, store.keys), attempts)
    if args.json:
        print_json(result.to_json(), out)
    else:
        for line in result.lines():
            write_line(out, line)
    return 0
