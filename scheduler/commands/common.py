"""What every command needs: the settings from flags and environment, and a connected store."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, TextIO

from ..settings import Settings, check_flags
from ..table import age, render, write_line
from ..store import Store

if TYPE_CHECKING:
    from ..client import Client


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(getattr(args, "redis_url", None), getattr(args, "namespace", None))


def refuse_bad_flags(args: argparse.Namespace) -> None:
    """What :func:`settings_from` refuses in --redis-url / --namespace, for the paths that never
    build settings (load --offline, probe --offline or --manifest, demo): the same flag is
    not fine on one path and an error on another."""
    check_flags(getattr(args, "redis_url", None), getattr(args, "namespace", None))


def connect(args: argparse.Namespace) -> Store:
    return Store.connect(settings_from(args))


def client_from(args: argparse.Namespace) -> "Client":
    """The Python API on the store the flags name: commands are thin callers of it."""
    from ..client import Client

    return Client(store=connect(args))


def print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


MORE_JOBS_SHOWN = 2  # a --slots worker's JOB cell names this many, then "+N"


def write_workers(docs: list[dict], out: TextIO) -> None:
    """The worker table of `fleet status` and `fleet workers`, from ``to_json`` documents: a
    ``--slots`` worker's state says how many of its slots are busy (``busy 3/8``); a GPU
    names the jobs holding it where the document says (`fleet status`'s does)."""
    rows = []
    for w in docs:
        state = f'{w["state"]} {w["busy_slots"]}/{w["slots"]}' if w["slots"] > 1 else w["state"]
        if w.get("drain_reason"):
            state += f' ({w["drain_reason"]})'
        names = w.get("job_names") or w["jobs"]  # names where the document has them (status, workers)
        jobs = names[:MORE_JOBS_SHOWN]
        more = len(names) - len(jobs)
        rows.append([w["name"], w["host"] + (" (sim)" if w["simulated"] else "") + ("" if w.get("declared", True)
                                                                                 else " *"),
                     state, ", ".join(f'{g["name"]} {g["vram_free_gib"]:g}/{g["vram_total_gib"]:g}G'
                                      + (f' ({", ".join(g["held_by"])})' if g.get("held_by") else "")
                                      for g in w["gpus"]) or "-",
                     f'{w["ram_gib"]:.0f}G', w["cores"], ", ".join(jobs) + (f" +{more}" if more else "") or None,
                     age_of(w["heartbeat_age_s"])])
    out.write(render(["WORKER", "HOST", "STATE", "GPUS (free/total)", "RAM", "CORES", "JOB", "HEARTBEAT"], rows,
                     out) + "\n")
    for w in docs:
        if w["note"]:
            write_line(out, f"! {w['name']} claims nothing: {w['note']}")


def age_of(seconds: float) -> str:
    """``seconds`` as :func:`scheduler.table.age` words an age."""
    return age(1.0, 1.0 + seconds)
