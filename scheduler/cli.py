"""The ``fleet`` command: argument parsing and the error edge, nothing else.

Every command lives in ``scheduler.commands.<name>`` as a plain function, so all
the CLI does is also a Python API. FleetError becomes one line on stderr and its
exit code (0 ok, 1 operational, 2 usage/validation, 3 not found); tracebacks
only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence


from . import __version__
from .errors import EXIT_USAGE, FleetError
from .logging_setup import setup_logging
from .settings import DEFAULT_MIN_FREE_MIB, ENV_NAMESPACE, ENV_REDIS_URL
from .job_filter import FILTER_STATES
from .table import printable


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url", default=argparse.SUPPRESS,
                        help=f"Redis URL (redis://, rediss://, unix://); default ${ENV_REDIS_URL} or "
                             f"redis://127.0.0.1:6379/0")
    common.add_argument("--namespace", default=argparse.SUPPRESS,
                        help=f"key namespace, so fleets can share a Redis; default ${ENV_NAMESPACE} or 'fleet'")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="fleet", parents=[common],
        description="Schedule ML training jobs over a fleet of heterogeneous hosts (Redis + rq).",
        epilog="Start with `fleet load training_manifest.toml`, then `fleet status`.")
    parser.add_argument("--version", action="version", version=f"fleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    p = command("status", "counts by state, workers, jobs nobody can run, recent failures")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="refresh every 2 s until Ctrl-C")

    p = command("jobs", "list jobs, newest activity first, with why each waits (REASON)")
    _filters(p)
    p.add_argument("--limit", type=_positive_int, default=100)
    p.add_argument("--offset", type=_non_negative_int, default=0)
    p.add_argument("--json", action="store_true")

    p = command("job", "everything about one job: identity, scheduling, every attempt")
    p.add_argument("job", help="job name, job_id or unique job_id prefix")
    p.add_argument("--json", action="store_true")

    p = command("explain", "why a job is pending, running or done: the first failing constraint per worker")
    p.add_argument("job", help="job name, job_id or unique job_id prefix")
    p.add_argument("--json", action="store_true")

    p = command("logs", "an attempt's output (the last 10,000 lines), optionally following it live")
    p.add_argument("job", help="job name, job_id or unique job_id prefix")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the attempt ends")
    p.add_argument("--attempt", type=_positive_int, help="which attempt (default: the latest)")
    p.add_argument("--raw", action="store_true",
                   help="print the job's terminal escapes (colours, cursor moves) as they are, not escaped")

    p = command("metrics", "an attempt's metric history, as the job reported it")
    p.add_argument("job", help="job name, job_id or unique job_id prefix")
    p.add_argument("--attempt", type=_positive_int, help="which attempt (default: the latest)")
    p.add_argument("--plot", action="store_true", help="draw the curve in the terminal (braille)")
    p.add_argument("--metric", help="the metric --plot draws (default: loss, else the first number reported)")
    p.add_argument("--csv", action="store_true")
    p.add_argument("--json", action="store_true")

    p = command("compare", "final metrics of finished jobs side by side, with the identity fields that differ")
    p.add_argument("jobs", nargs="*", metavar="JOB", help="jobs to compare (or --model / --all)")
    p.add_argument("--model", help="every finished job of this model")
    p.add_argument("--all", action="store_true", help="every finished job")
    p.add_argument("--sort", metavar="METRIC", help="sort by this metric, best (highest) first")
    p.add_argument("--ascending", action="store_true", help="lowest first (for losses)")
    p.add_argument("--plot", metavar="METRIC", help="overlay this metric's curves of the jobs, one marker each")
    p.add_argument("--csv", action="store_true")
    p.add_argument("--json", action="store_true")

    p = command("verify", "re-hash a job's outputs against the manifest taken when the attempt ended")
    p.add_argument("job", help="job name, job_id or unique job_id prefix")
    p.add_argument("--attempt", type=_positive_int, help="which attempt (default: the latest with outputs)")
    p.add_argument("--json", action="store_true")

    p = command("prune", "move old attempts' output dirs on this host to <runs-dir>/archive/<time>/ (never deletes)")
    p.add_argument("--keep", type=_non_negative_int, default=1, metavar="N",
                   help="always keep each job's newest N attempts with outputs (default 1)")
    p.add_argument("--older-than", type=_non_negative_float, default=30.0, metavar="DAYS",
                   help="only attempts that ended at least this many days ago (default 30)")
    p.add_argument("--include-last", action="store_true",
                   help="also archive a job's successful attempt (kept by default whatever --keep says)")
    p.add_argument("--runs-dir", default="runs", help="the workers' --runs-dir on this host (default ./runs)")
    p.add_argument("--dry-run", action="store_true", help="show what would move; move nothing")
    p.add_argument("--json", action="store_true")

    p = command("workers", "every worker seen in the last day, with its host and state")
    p.add_argument("--json", action="store_true")
    p.add_argument("--forget", metavar="NAME", action="append", default=[],
                   help="remove a stopped or dead worker's record now (repeatable; otherwise it goes a day after "
                        "its last heartbeat)")

    for action, help_text in (("cancel", "cancel jobs: pending ones never run, running ones are stopped"),
                              ("retry", "make failed or canceled jobs pending again"),
                              ("rerun", "run finished, failed or canceled jobs again, as their next attempt "
                                        "(earlier attempts and their outputs stay)"),
                              ("hold", "keep pending jobs from being claimed"),
                              ("release", "make held jobs claimable again")):
        p = command(action, help_text)
        p.add_argument("jobs", nargs="*", metavar="JOB", help="job name, job_id or unique job_id prefix "
                                                             "(or select jobs with the filters)")
        _filters(p, f"(without --state: the jobs {action} applies to)")
        p.add_argument("--yes", action="store_true",
                       help="on a terminal, act on more than 20 jobs the filters select without asking for it")
        p.add_argument("--json", action="store_true")
        if action == "retry":
            p.add_argument("--reset", action="store_true", help="also reset the failed-attempt count")

    p = command("fork", "print a new [[jobs]] entry made from a job with some fields changed (--append adds it)")
    p.add_argument("job", help="job name, job_id or unique job_id prefix")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a field to change, dotted into tables (hyper.lr=0.01, seed=3, mode=oracle); repeatable")
    p.add_argument("--name", help="the new job's name (default: <job>-fork, or -fork2, ... if taken)")
    p.add_argument("--append", metavar="MANIFEST", help="append the entry to this manifest file, atomically "
                                                      "(checked against it first); then reload")
    p.add_argument("--json", action="store_true")

    p = command("dashboard", "the fleet in a browser: jobs with their reasons, workers and GPUs, logs and metric "
                             "curves; read-only")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only; expose it "
                                                       "on purpose, e.g. behind a reverse proxy: it has no login)")
    p.add_argument("--port", type=int, default=8470, help="port to listen on (default 8470; 0: any free port)")

    p = command("drain", "let a worker finish its current job and claim no more")
    p.add_argument("worker", help="worker name as `fleet status` shows it")
    p.add_argument("--undo", action="store_true", help="resume claiming")
    p.add_argument("--reason", help="why, shown beside the worker's state in `fleet workers` and `fleet status`")

    p = command("history", "every attempt that ran in a time window, like sacct; --summary totals it like sreport")
    p.add_argument("--since", help="start of the window: an age (30m, 2h, 7d) or a local date or time "
                                   "(2026-12-01, 2026-12-01T08:00); default 24 hours before --until")
    p.add_argument("--until", help="end of the window, as --since; default now")
    p.add_argument("--host", help="only attempts on hosts matching this glob")
    p.add_argument("--state", help="only attempts with these outcomes, comma-separated (finished, failed, timeout, "
                                   "crashed, lost, interrupted, canceled, running)")
    p.add_argument("--summary", action="store_true", help="GPU-hours and core-hours per host and per model")
    p.add_argument("--json", action="store_true")

    p = command("load", "validate a manifest and apply it to Redis (idempotent)")
    p.add_argument("manifest", nargs="?", help="manifest path; default $FLEET_MANIFEST, "
                                               "/etc/fleet/training_manifest.toml, ./training_manifest.toml")
    p.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    p.add_argument("--print", action="store_true", help="print the normalised manifest (every default spelled out)")
    p.add_argument("--offline", action="store_true", help="only validate; do not contact Redis")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--allow-orphaning", action="store_true",
                   help="apply even a load that orphans every listed job, or 10+ jobs that are over half of them "
                        "(refused by default: a truncated manifest is likelier than the end of the work)")

    p = command("receiver", "daemon: load the manifest, reload on SIGHUP, stop on SIGTERM")
    p.add_argument("--manifest", help="manifest path (default: as for `fleet load`)")
    p.add_argument("--lease-s", type=_positive_float, default=30.0,
                   help="leases idle this long after a reaper gap get one grace period (default 30)")
    p.add_argument("--reap-interval-s", type=_positive_float, default=1.0,
                   help="how often to return jobs of dead workers to pending (default 1)")

    p = command("worker", "daemon: probe this host, claim the jobs it satisfies, run them through rq")
    p.add_argument("--host-profile", metavar="FILE.toml", help="declare the host instead of probing it "
                                                             "(simulation, tests, demo)")
    p.add_argument("--host-name", help="the name manifests' host lists match (default: short hostname)")
    p.add_argument("--gpu", type=_gpu_indices, action="extend", metavar="INDEX[,INDEX]",
                   help="use only these visible GPUs (repeatable); with --host-profile, these of the profile, "
                        "renumbered 0.. in this order")
    p.add_argument("--runs-dir", default="runs", help="where each attempt's output dir is created (default ./runs)")
    p.add_argument("--burst", action="store_true", help="exit 0 once nothing is claimable by this worker "
                                                         "and none of its slots runs a job")
    p.add_argument("--slots", type=_slots, default="1", metavar="N|auto",
                   help="run up to N attempts at once, each in its own rq work horse, claiming through the "
                        "host's ledger (auto: one per GPU, or one per core on a CPU-only host, up to 64; "
                        "default 1)")
    p.add_argument("--name", help="worker name (default host.pid)")
    p.add_argument("--lease-s", type=_positive_float, default=30.0,
                   help="lease length; a worker silent this long is presumed dead (default 30)")
    p.add_argument("--stop-now", action="store_true",
                   help="on SIGTERM return the running job to pending at once, without its stop_grace_s")
    p.add_argument("--min-free-disk-mib", type=_non_negative_float, default=DEFAULT_MIN_FREE_MIB, metavar="MIB",
                   help="claim nothing while --runs-dir has less free space than this "
                        f"(default {DEFAULT_MIN_FREE_MIB:g}; 0: never)")

    p = command("probe", "what this host offers and which jobs it could run, and why not the others")
    p.add_argument("--host-profile", metavar="FILE.toml", help="describe a declared host instead of this one")
    p.add_argument("--host-name", help="the name manifests' host lists match (default: short hostname)")
    p.add_argument("--gpu", type=_gpu_indices, action="extend", metavar="INDEX[,INDEX]",
                   help="only these visible GPUs (of the profile, with --host-profile)")
    p.add_argument("--manifest", help="judge this manifest's jobs instead of the live store's")
    p.add_argument("--offline", action="store_true", help="only describe the host; do not contact Redis")
    p.add_argument("--limit", type=_positive_int, default=1000, help="jobs to judge from the store (default 1000)")
    p.add_argument("--json", action="store_true")

    p = command("demo", "run a demo fleet on this machine (embedded Redis, real + simulated workers)")
    p.add_argument("--manifest", help="demo manifest (default manifests/demo.toml)")
    p.add_argument("--hosts-dir", help="simulated host profiles (default manifests/hosts)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with runs and logs")
    p.add_argument("--timeout-s", type=_positive_float, default=300.0, help="give up after this long (default 300)")
    p.add_argument("--fake-redis", action="store_true",
                   help="use fakeredis's TCP server even if redis-server exists (the automatic fallback)")
    return parser


def _filters(p: argparse.ArgumentParser, states_note: str = "") -> None:
    """The job filters `fleet jobs` and the actions share (scheduler/job_filter.py)."""
    p.add_argument("--state", help=f"only jobs in these states, comma-separated ({', '.join(FILTER_STATES)})"
                                   + (f" {states_note}" if states_note else ""))
    p.add_argument("--name", help="only jobs whose name matches this glob")
    p.add_argument("--model", help="only jobs whose model matches this glob")
    p.add_argument("--host", help="only jobs last placed on a host matching this glob")
    p.add_argument("--worker", help="only jobs last run by a worker matching this glob")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0 or value == float("inf"):  # `not >` also refuses nan
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _slots(text: str) -> str:
    """``--slots 4`` or ``--slots auto`` (resolved against the host once it is probed)."""
    if text != "auto" and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of slots (1 or more) or auto")
    return text


def _gpu_indices(text: str) -> list[int]:
    """``--gpu 2,0`` (CUDA_VISIBLE_DEVICES's spelling) or ``--gpu 2 --gpu 0``: the same list."""
    return [_non_negative_int(part.strip()) for part in text.split(",")]


# command -> (module in scheduler.commands, function): a command imports only its own
# module, so `fleet status` does not pay for the worker's or the demo's imports.
_COMMANDS = {
    "load": ("load", "run"),
    "receiver": ("receiver", "run"),
    "worker": ("worker", "run"),
    "explain": ("explain", "run"),
    "demo": ("demo", "run"),
    "probe": ("probe", "run"),
    "job": ("jobinfo", "run_job"),
    "logs": ("logs", "run"),
    "metrics": ("results", "run_metrics"),
    "compare": ("results", "run_compare"),
    "verify": ("verify", "run"),
    "prune": ("prune", "run"),
    "workers": ("jobinfo", "run_workers"),
    "cancel": ("actions", "run_action"),
    "retry": ("actions", "run_action"),
    "rerun": ("actions", "run_action"),
    "hold": ("actions", "run_action"),
    "release": ("actions", "run_action"),
    "drain": ("actions", "run_drain"),
    "status": ("status", "run_status"),
    "jobs": ("status", "run_jobs"),
    "history": ("history", "run"),
    "fork": ("fork", "run"),
    "dashboard": ("dashboard", "run"),
}


def _dispatch(args: argparse.Namespace):
    module, function = _COMMANDS[args.command]
    return getattr(importlib.import_module(f".commands.{module}", __package__), function)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    setup_logging(verbose=debug)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args)(args, sys.stdout)
    except FleetError as err:
        if debug:
            raise
        print(f"fleet {args.command}: error: {printable(err, keep=chr(10))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
