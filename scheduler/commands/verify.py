"""``fleet verify JOB [--attempt N]``: re-hash an attempt's outputs against the manifest taken when it ended."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..artifacts import verify
from ..errors import EXIT_OK, EXIT_USAGE, NotFoundError
from ..store.claims import output_dir_of
from ..table import write_line
from .common import connect, print_json


def run(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        record = store.jobs.get(store.jobs.resolve(args.job))
        attempts = store.jobs.attempts(record.job_id)
        ended = [a for a in attempts if output_dir_of(a)]
        if args.attempt:
            ended = [a for a in ended if a["attempt"] == args.attempt]
        if not ended:
            raise NotFoundError(f"{record.name} has no ended attempt{' ' + str(args.attempt) if args.attempt else ''} "
                                f"with outputs; `fleet job {record.name}` lists its attempts")
        attempt = ended[-1]
        manifest = store.jobs.artifacts(record.job_id, attempt["attempt"])
    if manifest is None:
        raise NotFoundError(f"no artifact manifest recorded for {record.name} attempt {attempt['attempt']}")
    where = output_dir_of(attempt)
    result = verify(where, manifest)
    data = {"job_id": record.job_id, "name": record.name, "attempt": attempt["attempt"],
            "output_dir": where, "archived": bool(attempt.get("archived_to")), "host": attempt.get("host"),
            "ok": result.ok,
            "files": len(manifest.get("files", {})), "missing": result.missing, "changed": result.changed,
            "extra": result.extra}
    if args.json:
        print_json(data, out)
    elif result.ok:
        write_line(out, f"{record.name} attempt {attempt['attempt']}: all {data['files']} files match "
                        f"(overall {manifest['overall'][:16]})")
    else:
        write_line(out, f"{record.name} attempt {attempt['attempt']}: MISMATCH in {where} "
                        f"(on {attempt.get('host')})")
        for kind in ("missing", "changed", "extra"):
            for path in data[kind]:
                write_line(out, f"  {kind}: {path}")
    return EXIT_OK if result.ok else EXIT_USAGE
