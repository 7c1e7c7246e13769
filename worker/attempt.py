"""One attempt of a claimed job: everything its run needs, built by the worker before the fork.

The worker keeps the :class:`Attempt` beside its claim and hands it to the work horse as an
argument (:meth:`worker.rq_worker.FleetWorker.perform_job`), so parent and horse share no module
state, and the parent reads what it built (the output dir, the result pipe) from its own value
when the attempt ends. An Attempt is the unit one slot of a worker runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from scheduler.keys import Keys
from scheduler.resources import GpuInfo
from scheduler.runs_layout import job_file, metrics_file, output_dir
from scheduler.sdnotify import NOTIFY_VARIABLES
from scheduler.store.claims import Claim
from scheduler.store.queries import JobRecord

from .proctree import KILL_GRACE_S
from .runner import build_argv

# The worker's own environment variables a job must never see (the Redis URL carries the password).
WORKER_SECRETS = ("FLEET_REDIS_URL",)


@dataclass(frozen=True)
class Attempt:
    claim: Claim
    name: str
    spec: dict[str, Any]
    out_dir: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    timeout_s: float
    parent_pid: int  # the worker's: a horse whose parent changed has lost its worker
    redis_url: str = field(default="", repr=False)  # for a horse not run by rq, which has no connection to borrow
    log_key: str = ""
    metrics_key: str = ""
    artifacts_key: str = ""
    job_key: str = ""  # the job's record, whose cancel_requested the horse watches
    lost_grace_s: float = KILL_GRACE_S  # a dead worker's job must be gone before its lease runs out
    result_fd: int = -1  # write end of the pipe the horse sends its Handoff through
    receive_fd: int = -1  # the worker's read end of that pipe
    resumed_from: int | None = None  # the earlier attempt whose output dir it was given to resume from
    # A warm stop's word to the horse: the worker writes a byte (os.write is safe in a signal
    # handler), the horse's poll reads it and stops the job gently (worker/execute.py).
    stop_read_fd: int = -1
    stop_write_fd: int = -1
    stop_grace_s: float = KILL_GRACE_S  # the job's stop_grace_s: SIGTERM, then this long, then SIGKILL

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    @property
    def number(self) -> int:
        """1 for a job's first attempt."""
        return self.claim.attempt


@dataclass(frozen=True)
class Resume:
    """What an attempt after the first is told of the one before it: its output dir where this
    host can reach it (``dir``; "" otherwise), its host when that is another one (``host``)."""

    attempt: int
    dir: str
    host: str


def resume_from(previous: dict | None, place: "WorkerPlace", name: str, job_id: str) -> Resume | None:
    """The latest earlier attempt as the next one resumes from it, however it ended (lost,
    timed out, failed, interrupted, or finished before a rerun): its recorded output dir, or,
    for one that ended without saying (a lost one) on this host, the dir this host gave it."""
    if not previous or not isinstance(previous.get("attempt"), int):
        return None
    host = str(previous.get("host") or "")
    recorded = previous.get("archived_to") or previous.get("output_dir")
    if not recorded and host == place.host_name:
        recorded = output_dir(place.runs_dir, name, job_id, previous["attempt"])
    reachable = bool(recorded) and os.path.isdir(str(recorded))
    return Resume(previous["attempt"], str(recorded) if reachable else "", host if host != place.host_name else "")


@dataclass(frozen=True)
class WorkerPlace:
    """What an attempt learns from the worker that runs it."""

    runs_dir: str
    host_name: str
    worker_name: str
    gpus: Sequence[GpuInfo]  # the worker's GPUs, in the order a claim's gpu_positions count them
    redis_url: str = field(default="", repr=False)


def previous_attempt(raw: object, attempt: int) -> dict | None:
    """The record of the attempt before ``attempt`` from the reply of its LINDEX (None for a
    first attempt, or a record that is not fleet's JSON: then there is nothing to resume)."""
    if attempt < 2 or not isinstance(raw, bytes):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("attempt") == attempt - 1 else None


def run_group(meta: object) -> str:
    """The manifest's name (its file's stem where it has none) from the reply of HMGET name path
    on the manifest's meta hash; "" for a reply that is not one."""
    if not isinstance(meta, list) or len(meta) != 2:
        return ""
    name, path = (v.decode(errors="replace") if isinstance(v, bytes) else "" for v in meta)
    return name or os.path.splitext(os.path.basename(path))[0]


def tracker_names(name: str, out_dir: str, group: str) -> dict[str, str]:
    """What W&B and MLflow name a run after, so a job's runs there are found by its fleet name
    (a job, or the worker's environment, that sets one keeps its own)."""
    names = {"WANDB_NAME": name, "WANDB_DIR": out_dir, "MLFLOW_RUN_NAME": name}
    if group:
        names["WANDB_RUN_GROUP"] = group
    return names


def build_attempt(place: WorkerPlace, keys: Keys, claim: Claim, record: JobRecord, parent_dirs: Mapping[str, str],
                  lost_grace_s: float, group: str = "", resume: Resume | None = None) -> Attempt:
    """Make the attempt's output dir and its argv, env and result pipe; ``group`` is the
    manifest's name, the run group trackers are told (:func:`tracker_names`); ``resume``, the
    attempt before it (:func:`resume_from`): ``FLEET_RESUME_DIR``, ``FLEET_RESUME_HOST`` and
    ``{resume_dir}``, empty for a first attempt or one with nothing reachable to resume.

    Raises UnsafePathError (a name that would escape the runs dir), RunError (a command that
    cannot be built) or OSError (an unwritable runs dir): the job fails, it is not retried forever."""
    out_dir = output_dir(place.runs_dir, record.name, record.job_id, claim.attempt)
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    resume_dir = resume.dir if resume else ""
    argv = build_argv(record.spec, record.job_id, out_dir, claim.attempt, dict(parent_dirs), resume_dir)
    env = dict(os.environ)
    env.update({
        "FLEET_JOB_ID": record.job_id, "FLEET_JOB_NAME": record.name, "FLEET_ATTEMPT": str(claim.attempt),
        "FLEET_OUTPUT_DIR": out_dir, "FLEET_JOB_FILE": job_file(out_dir),
        "FLEET_METRICS": metrics_file(out_dir), "FLEET_HOST_NAME": place.host_name,
        "FLEET_WORKER": place.worker_name, "FLEET_AFTER_DIRS": json.dumps(dict(parent_dirs), sort_keys=True),
        "CUDA_VISIBLE_DEVICES": cuda_visible(place.gpus, claim),
        "FLEET_RESUME_DIR": resume_dir, "FLEET_RESUME_HOST": resume.host if resume else "",
    })
    for key, value in tracker_names(record.name, out_dir, group).items():
        env.setdefault(key, value)
    for secret in WORKER_SECRETS + NOTIFY_VARIABLES:  # no job can speak for its worker to systemd either
        env.pop(secret, None)
    receive_fd, result_fd = os.pipe()
    os.set_blocking(receive_fd, False)
    stop_read_fd, stop_write_fd = os.pipe()
    os.set_blocking(stop_read_fd, False)
    os.set_blocking(stop_write_fd, False)
    grace = record.spec.get("stop_grace_s")
    return Attempt(
        claim=claim, name=record.name, spec=record.spec, out_dir=out_dir, argv=argv, env=env,
        timeout_s=float(record.spec.get("timeout_s") or 0), parent_pid=os.getpid(), redis_url=place.redis_url,
        log_key=keys.log(record.job_id, claim.attempt), metrics_key=keys.metrics(record.job_id, claim.attempt),
        artifacts_key=keys.artifacts(record.job_id, claim.attempt), job_key=keys.job(record.job_id),
        lost_grace_s=lost_grace_s, result_fd=result_fd, receive_fd=receive_fd,
        resumed_from=resume.attempt if resume and resume.dir else None,
        stop_read_fd=stop_read_fd, stop_write_fd=stop_write_fd,
        stop_grace_s=float(grace) if isinstance(grace, (int, float)) else KILL_GRACE_S)


def close_pipe(attempt: Attempt | None) -> None:
    """The worker's end of an attempt: both ends of its result and stop pipes (the horse has
    its own copies)."""
    if attempt is None:
        return
    for fd in (attempt.receive_fd, attempt.result_fd, attempt.stop_read_fd, attempt.stop_write_fd):
        if fd >= 0:
            os.close(fd)


def cuda_visible(gpus: Sequence[GpuInfo], claim: Claim) -> str:
    """The reserved GPUs as the job must address them, comma-separated (each its UUID where
    known, else its NVML index); '' hides every GPU from jobs that reserved none."""
    out = []
    for position in claim.gpu_positions:
        gpu = gpus[position - 1]
        out.append(gpu.uuid or str(gpu.nvml_index if gpu.nvml_index is not None else gpu.index))
    return ",".join(out)
