"""The table of job fields: type, built-in default, and whether it is identity.

Identity fields say what a job *is* (the content hashed into ``job_id``);
scheduling fields say how and where to run it. Keeping the split in one table
is what lets a reload change a job's priority without ever rerunning it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kinds are TOML value shapes; "number" accepts int and float alike.
STR, INT, NUMBER, BOOL, STR_LIST, TABLE = "string", "integer", "number", "boolean", "list of strings", "table"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    default: Any
    identity: bool
    doc: str


_FIELDS = [
    # identity
    Field("model", STR, None, True, "model family; matched by hosts' allow_jobs/deny_jobs globs"),
    Field("mode", STR, None, True, "training mode, e.g. realistic or oracle"),
    Field("hyper", TABLE, {}, True, "hyperparameters, any TOML table"),
    Field("seed", INT, 0, True, "random seed"),
    # scheduling
    Field("name", STR, None, False, "unique, path-safe job name: 1-64 of [A-Za-z0-9_.-], no '..', not 16 "
                                    "lowercase hex digits (that reads as a job_id)"),
    Field("priority", INT, 0, False, "higher runs first, -1000..1000; then bigger min_vram_gib, then load order"),
    Field("require_cuda", BOOL, False, False, "run only on a host with a CUDA GPU"),
    Field("prefer_cuda", BOOL, False, False, "go to an idle CUDA worker when one can take it"),
    Field("min_vram_gib", NUMBER, 0, False, "free VRAM needed on each of the job's GPUs at claim time (0: the "
                                             "GPUs are held whole)"),
    Field("gpus", INT, None, False, "GPUs the job needs, all on one host, 0..64 (unset: 1 for a job that runs on a "
                                    "GPU, else 0)"),
    Field("gpu_names", STR_LIST, None, False, "globs over the GPU product name NVML reports, e.g. [\"*A100*\"] "
                                              "(unset: any)"),
    Field("min_compute_capability", NUMBER, None, False, "lowest CUDA compute capability of the job's GPUs, e.g. "
                                                         "8.0 (unset: any)"),
    Field("min_ram_gib", NUMBER, 0, False, "RAM reserved on the host while the job runs"),
    Field("min_cores", INT, 1, False, "cores reserved on the host while the job runs"),
    Field("allowed_hosts", STR_LIST, [], False, "host name globs the job may run on (empty: any)"),
    Field("denied_hosts", STR_LIST, [], False, "host name globs the job must not run on"),
    Field("after", STR_LIST, [], False, "names of jobs that must finish first (Slurm's afterok)"),
    Field("after_any", STR_LIST, None, False, "names of jobs that must end first, in any way: finished, failed "
                                              "for good or canceled (Slurm's afterany)"),
    Field("after_failed", STR_LIST, None, False, "names of jobs that must fail for good first, e.g. for an alert "
                                                 "(Slurm's afternotok)"),
    Field("max_attempts", INT, 3, False, "failed, timed-out or lost attempts before the job fails for good, 1..100"),
    Field("retry_delay_s", NUMBER, None, False, "seconds between a failed, timed-out, crashed or lost attempt and "
                                                "the next claim, doubling per failed attempt up to 10 minutes, "
                                                "+-20% jitter (unset: 5; 0: at once)"),
    Field("timeout_s", NUMBER, 0, False, "kill the job's process group after this many seconds (0: none)"),
    Field("stop_grace_s", NUMBER, None, False, "seconds a stopped job (warm stop, cancel, timeout) has after its "
                                               "SIGTERM to save a checkpoint, before SIGKILL (unset: 5)"),
    Field("command", STR_LIST, [], False, "argv to run, with {field} placeholders; never through a shell"),
    Field("entrypoint", STR, "", False, "module:function to call instead of a command"),
    Field("forked_from", STR, None, False, "the name of the job this one was forked from (`fleet fork` writes "
                                           "it); `fleet job` shows the link both ways"),
]

FIELDS: dict[str, Field] = {f.name: f for f in _FIELDS}


def builtin_defaults() -> dict[str, Any]:
    """Every job field's built-in default (what a manifest without [defaults] gives a job); a
    field whose default is None is left unset."""
    return {f.name: f.default for f in FIELDS.values() if f.default is not None}
SCHEDULING_FIELDS = frozenset(f.name for f in _FIELDS if not f.identity)
REQUIRED_FIELDS = ("name", "model")

HOST_FIELDS: dict[str, tuple[str, Any, str]] = {
    "description": (STR, "", "free text shown by fleet status"),
    "priority": (INT, 0, "higher-priority hosts get first pick of jobs several idle hosts could run equally well"),
    "allow_jobs": (STR_LIST, [], "model or job name globs this host may run (empty: any)"),
    "deny_jobs": (STR_LIST, [], "model or job name globs this host must not run"),
}

TOP_LEVEL_KEYS = ("schema_version", "name", "defaults", "allowed", "hosts", "jobs")
SCHEMA_VERSION = 1
PRIORITY_RANGE = (-1000, 1000)
MAX_ATTEMPTS_RANGE = (1, 100)
GPUS_RANGE = (0, 64)
COMPUTE_CAPABILITY_RANGE = (0, 99)
RETRY_DELAY_RANGE = (0, 86400)
RETRY_DELAY_DEFAULT_S = 5.0  # a crash-looping job waits 5, 10, 20 s ... between attempts, not milliseconds
RETRY_DELAY_CAP_S = 600.0  # doubling stops here (a job that asks for more keeps its own base)
RETRY_JITTER = 0.2  # each delay is stretched or shrunk by up to this fraction, so retries do not march in step


def kind_of(value: Any) -> str | None:
    """The field kind a TOML value has, or None for shapes fleet does not accept."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STR
    if isinstance(value, dict):
        return TABLE
    if isinstance(value, list):
        return STR_LIST if all(isinstance(v, str) for v in value) else "list"
    return None


def fits(kind: str, value: Any) -> bool:
    """Whether ``value`` may stand in a field of ``kind`` (ints fit number fields)."""
    actual = kind_of(value)
    if kind == NUMBER:
        return actual in (INT, NUMBER)
    if kind == "list":
        return isinstance(value, list)
    return actual == kind
