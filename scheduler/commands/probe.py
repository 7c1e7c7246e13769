"""``fleet probe``: what this host offers, and which jobs it could run (and why not the others).

``--json`` prints ``HostResources.to_dict()``: per GPU its ``compute_capability``
and ``uuid``, and for the host its ``links`` (``[a, b, kind]`` per GPU pair) and
``nvlink_islands``; the human output shows capabilities and islands in brief.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from ..manifest import load_manifest
from ..manifest.model import JobSpec
from ..matching import free_of, job_reason
from ..resources import LINK_KINDS
from ..table import render, write_line
from .common import connect, print_json, refuse_bad_flags
from .worker import describe_host


def run(args: argparse.Namespace, out: TextIO) -> int:
    refuse_bad_flags(args)
    host = describe_host(args)
    if args.manifest:
        manifest = load_manifest(args.manifest)
        jobs, hosts = list(manifest.jobs), manifest.hosts
    elif args.offline:
        jobs, hosts = [], {}
    else:
        store = connect(args)
        with store.errors():
            records = store.jobs.many(store.jobs.list_ids(limit=args.limit))
            hosts = store.hosts(own=host.hostname)  # its own rules unreadable: every verdict would be a guess
        jobs = [JobSpec.from_flat(r.spec) for r in records]
    verdicts = [(job, job_reason(job, hosts.get(host.hostname), host, free_of(host))) for job in jobs]
    if args.json:
        print_json({"host": host.to_dict(), "jobs": [{"name": j.name, "job_id": j.job_id, "can_run": r is None,
                                                       "reason": r} for j, r in verdicts]}, out)
        return 0
    write_line(out, f"{host.hostname}{' (simulated)' if host.simulated else ''}: {host.cores} cores, "
                    f"{host.ram_total_gib:.1f} GiB RAM ({host.ram_available_gib:.1f} available)")
    for gpu in host.gpus:
        write_line(out, f"  GPU {gpu.index}: {gpu.name}, {gpu.vram_free_gib:.1f}/{gpu.vram_total_gib:.1f} GiB free"
                        f"{', compute ' + gpu.compute_capability if gpu.compute_capability else ''}"
                        f"{', MIG instance' if gpu.mig_mode and gpu.uuid.startswith('MIG-') else ''}")
    if not host.gpus:
        out.write("  no CUDA GPU\n")
    islands = host.nvlink_islands()
    if islands:
        write_line(out, "  NVLink: " + " ".join("[" + " ".join(map(str, island)) + "]" for island in islands))
    elif host.links:
        write_line(out, f"  NVLink: none (closest link: {_closest(host.links)})")
    for note in host.notes:
        write_line(out, f"  note: {note}")
    if host.hostname not in hosts and hosts:
        write_line(out, f"  {host.hostname} is not in [hosts]: admitted with defaults (priority 0, no allow/deny)")
    if verdicts:
        rows = [[j.name, j.job_id, "yes" if r is None else "no", r or ""] for j, r in verdicts]
        out.write("\n" + render(["JOB", "JOB_ID", "CAN RUN", "WHY NOT"], rows, out) + "\n")
    return 0


def _closest(links) -> str:
    """The closest kind among ``HostResources.links``, for one line of human output."""
    return min((kind for _a, _b, kind in links), key=lambda k: LINK_KINDS.index(k) if k in LINK_KINDS else 99)
