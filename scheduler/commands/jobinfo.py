"""``fleet job JOB`` and ``fleet workers``: one job in full, every worker in a table."""

from __future__ import annotations

import argparse
import json
import time
from typing import TextIO

from ..errors import NotFoundError, UsageError
from ..job_rows import duration
from ..table import age, printable, render, write_line
from .common import client_from, print_json, write_workers


def run_job(args: argparse.Namespace, out: TextIO) -> int:
    data = client_from(args).job(args.job)
    if args.json:
        print_json(data, out)
        return 0
    now = time.time()
    state = data["state"] + ("" if data["in_manifest"] else " (orphaned)") + f" since {age(data['state_at'], now)}"
    head = {"name": data["name"], "job_id": data["job_id"], "state": state, "reason": data["reason"],
            "attempts": f'{data["attempts"]} (max_attempts {data["max_attempts"]})',
            "progress": data["progress"]}
    if data["state"] == "running":
        head["elapsed"] = f'{duration(data["elapsed_s"])} on {data["host"]} (worker {data["worker"]})'
    if data["last_reason"] and data["last_reason"] != data["reason"]:
        head["last reason"] = data["last_reason"]
    head["forked from"] = data["forked_from"]
    head["forked into"] = ", ".join(data["forked_into"]) or None
    write_fields(out, head)
    out.write("\nidentity (hashed into job_id):\n")
    write_fields(out, flatten(data["identity"]), indent=2)
    sched = {k: v for k, v in data["scheduling"].items() if v not in ([], "", 0, False) or k in ("priority",)}
    out.write("\nscheduling:\n")
    write_fields(out, {k: _value(v) for k, v in sorted(sched.items())}, indent=2)
    if data["latest_metrics"]:
        out.write(f'\nlatest metrics (attempt {data["attempts"]}):\n')
        write_fields(out, flatten(data["latest_metrics"]), indent=2)
    if data["result"]:
        out.write(f'\nresult (`fleet metrics {printable(data["name"])}` for the history):\n')
        write_fields(out, flatten(data["result"]), indent=2)
    attempts = data["attempts_detail"]
    if attempts:
        rows = [[a["attempt"], a.get("worker"), a.get("host"), age(a.get("started_at"), now),
                 duration(a.get("elapsed_s")), a.get("outcome", "running"), a.get("exit_code", "-"),
                 f'#{a["resumed_from"]}' if isinstance(a.get("resumed_from"), int) else "-",
                 (a.get("reason", "") + (" [archived]" if a.get("archived_to") else "")).strip()] for a in attempts]
        header = ["#", "WORKER", "HOST", "STARTED", "ELAPSED", "OUTCOME", "EXIT", "RESUMED", "REASON"]
        if any(a.get("gpu") for a in attempts):  # which card each attempt had, for jobs that took one
            header.insert(3, "GPU")
            for row, a in zip(rows, attempts):
                row.insert(3, _short_gpu(a.get("gpu") or "-"))
        out.write("\n" + render(header, rows, out) + "\n")
        if data["output_dir"]:
            archived = " (archived by `fleet prune`)" if data["output_archived"] else ""
            write_line(out, f'output dir (on {data["output_host"] or data["host"]}): {data["output_dir"]}{archived}')
    else:
        out.write("\nno attempts yet (`fleet explain` says why)\n")
    return 0


def flatten(table: dict, prefix: str = "") -> dict[str, str]:
    """A nested table as aligned fields: {"hyper": {"lr": 0.1}} -> {"hyper.lr": "0.1"}."""
    flat: dict[str, str] = {}
    for key, value in sorted(table.items()):
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _value(value)
    return flat


def _value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, sort_keys=True)


def write_fields(out: TextIO, fields: dict[str, object], indent: int = 0) -> None:
    """``field  value`` lines, the values aligned; a None value is left out."""
    shown = {k: v for k, v in fields.items() if v is not None and v != ""}
    width = max((len(k) for k in shown), default=0)
    for key, value in shown.items():
        write_line(out, f"{' ' * indent}{key.ljust(width)}  {value}")


def _short_gpu(ledger_key: str) -> str:
    """A GPU's UUID cut to its first group ("GPU-8f2c1a3b"), as `nvidia-smi -L` starts it; other keys whole."""
    return ledger_key[:12] if ledger_key.startswith("GPU-") else ledger_key


def run_workers(args: argparse.Namespace, out: TextIO) -> int:
    client = client_from(args)
    if args.forget:
        return _forget(client.store, args.forget, time.time(), out)
    docs = client.workers()
    if args.json:
        print_json(docs, out)
        return 0
    if not docs:
        out.write("no workers have registered; start one with `fleet worker`\n")
        return 0
    write_workers(docs, out)
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
