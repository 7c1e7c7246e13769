"""``fleet explain JOB``: why a job is where it is."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..explain import explanation
from ..table import write_line
from .common import connect, print_json


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        record = store.jobs.get(store.jobs.resolve(args.job))
        result = explanation(store.explain_view(record))
    if args.json:
        print_json(result.to_json(), out)
    else:
        for line in result.lines():
            write_line(out, line)
    return 0
