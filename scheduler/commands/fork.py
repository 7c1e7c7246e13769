"""``fleet fork JOB --set KEY=VALUE [--name NEW] [--append MANIFEST]``."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..table import printable, write_line
from .common import client_from, print_json


def run(args: argparse.Namespace, out: TextIO) -> int:
    doc = client_from(args).fork(args.job, args.set, args.name, args.append)
    if args.json:
        print_json(doc, out)
        return 0
    if doc["appended_to"]:
        write_line(out, f"appended {doc['name']} (job_id {doc['job_id']}, forked from {doc['parent']}) to "
                        f"{doc['appended_to']}; load it: `fleet load {doc['appended_to']}` (or `systemctl reload "
                        f"fleet-receiver`)")
        return 0
    out.write(printable(doc["toml"], keep="\n"))
    return 0
