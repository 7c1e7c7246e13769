"""``fleet job JOB`` and ``fleet workers``: one job in full, every worker in a table."""

from __future__ import annotations

import argparse
import json
import time
from typing import TextIO

from ..errors import NotFoundError, UsageError
from ..manifest.model import JobSpec
from ..store.claims import output_dir_of
from ..table import age, printable, render, write_line
from .common import connect, print_json, write_workers


def run_job(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    with store.errors():
        record = store.jobs.get(store.jobs.resolve(args.job))
        attempts = store.jobs.attempts(record.job_id)
        identity = store.jobs.identity(record.job_id)
        result = store.jobs.result(record.job_id)
        latest = store.streams.latest_metrics(record.job_id, record.attempts) if record.attempts else None
    last = next((a for a in reversed(attempts) if output_dir_of(a)), None)  # the newest attempt with outputs
    spec = JobSpec.from_flat(record.spec)
    data = {**record.summary(), "in_manifest": record.in_manifest, "max_attempts": record.max_attempts,
            "identity": identity, "scheduling": spec.scheduling, "reason": record.reason,
            "attempts_detail": attempts, "created_at": record.created_at, "state_at": record.state_at,
            "after": spec.scheduling.get("after", []),
            "output_dir": output_dir_of(last) if last else None,
            "result": result, "latest_metrics": latest}
    if args.json:
        print_json(data, out)
        return 0
    write_line(out, f"{record.name}  job_id {record.job_id}  {record.state.value}"
                    f"{'' if record.in_manifest else ' (orphaned)'} since {age(record.state_at)}")
    write_line(out, f"identity (hashed into job_id): {json.dumps(identity, sort_keys=True)}")
    sched = {k: v for k, v in spec.scheduling.items() if v not in ([], "", 0, False) or k in ("priority",)}
    write_line(out, f"scheduling: {json.dumps(sched, sort_keys=True)}")
    if record.reason:
        write_line(out, f"last reason: {record.reason}")
    if latest:
        write_line(out, f"latest metrics (attempt {record.attempts}): {json.dumps(latest, sort_keys=True)}")
    if data["result"]:
        write_line(out, f"result: {json.dumps(data['result'], sort_keys=True)}  (`fleet metrics {record.name}` for "
                        f"the history)")
    if attempts:
        now = time.time()
        rows = [[a["attempt"], a.get("worker"), a.get("host"), age(a.get("started_at"), now),
                 f'{a["ended_at"] - a["started_at"]:.1f}s' if a.get("ended_at") else "running",
                 a.get("outcome", "running"), a.get("exit_code", "-"),
                 (a.get("reason", "") + (" [archived]" if a.get("archived_to") else "")).strip()] for a in attempts]
        header = ["#", "WORKER", "HOST", "STARTED", "TOOK", "OUTCOME", "EXIT", "REASON"]
        if any(a.get("gpu") for a in attempts):  # which card each attempt had, for jobs that took one
            header.insert(3, "GPU")
            for row, a in zip(rows, attempts):
                row.insert(3, _short_gpu(a.get("gpu") or "-"))
        out.write("\n" + render(header, rows, out) + "\n")
        if last:
            archived = " (archived by `fleet prune`)" if last.get("archived_to") else ""
            write_line(out, f"output dir (on {last.get('host') or record.host}): {output_dir_of(last)}{archived}")
    else:
        out.write("no attempts yet (`fleet explain` says why)\n")
    return 0


def _short_gpu(ledger_key: str) -> str:
    """A GPU's UUID cut to its first group ("GPU-8f2c1a3b"), as `nvidia-smi -L` starts it; other keys whole."""
    return ledger_key[:12] if ledger_key.startswith("GPU-") else ledger_key


def run_workers(args: argparse.Namespace, out: TextIO) -> int:
    store = connect(args)
    now = time.time()
    if args.forget:
        return _forget(store, args.forget, now, out)
    with store.errors():
        workers = store.workers(now)
    if args.json:
        print_json([w.to_json(now) for w in workers], out)
        return 0
    if not workers:
        out.write("no workers have registered; start one with `fleet worker`\n")
        return 0
    write_workers([w.to_json(now) for w in workers], out)
    return 0


def _forget(store, names: list[str], now: float, out: TextIO) -> int:
    """`fleet workers --forget`: all named records go, or none (a live or unknown name is refused
    before anything is removed)."""
    with store.errors():
        found = {name: store.worker(name, now) for name in names}
        for name, info in found.items():
            if info is None:
                raise NotFoundError(f"no worker named {printable(name)!r} is registered; `fleet workers` lists them")
            if info.live:
                raise UsageError(f"worker {printable(name)!r} is {info.state} (heartbeat "
                                 f"{info.heartbeat_age(now):.0f}s ago): stop it first, or it registers again at "
                                 f"its next heartbeat")
        for name in found:
            store.forget_worker(name)
            out.write(f"forgot worker {printable(name)}\n")
    return 0
