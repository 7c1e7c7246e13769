"""``fleet explain JOB``: why a job is where it is."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..explain import explanation_lines
from ..table import write_line
from .common import client_from, print_json


def run(args: argparse.Namespace, out: TextIO) -> int:
    doc = client_from(args).explain(args.job)
    if args.json:
        print_json(doc, out)
    else:
        for line in explanation_lines(doc):
            write_line(out, line)
    return 0
