"""``fleet load MANIFEST [--dry-run] [--print] [--json] [--allow-orphaning]``."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..errors import ManifestError
from ..manifest import dumps_manifest, load_manifest, locate_manifest
from ..plan_text import plan_lines, sweep_counts
from ..table import write_line
from .common import client_from, print_json, refuse_bad_flags


def run(args: argparse.Namespace, out: TextIO) -> int:
    refuse_bad_flags(args)
    path = locate_manifest(args.manifest)
    manifest = load_manifest(path)  # validation first: a rejected manifest never needs Redis
    if args.print:
        out.write(dumps_manifest(manifest))
        if args.dry_run and args.offline:
            return 0
    if args.offline:
        write_line(out, f"{path}: valid, {len(manifest.jobs)} jobs, {len(manifest.hosts)} hosts (not compared with "
                        f"Redis)")
        for warning in manifest.warnings:
            write_line(out, f"warning: {warning}")
        return 0
    plan = client_from(args).load_plan(manifest, dry_run=args.dry_run, allow_orphaning=args.allow_orphaning)
    if args.json:
        print_json({**plan.to_dict(), "sweeps": sweep_counts(plan, manifest.sweeps)}, out)
    else:
        for n, line in enumerate(plan_lines(plan, manifest.sweeps)):
            write_line(out, f"{path}: {line}" if n == 0 else line)
    if plan.refused:  # a dry run shows the plan, then fails as the real load would
        raise ManifestError([plan.refused])
    return 0
