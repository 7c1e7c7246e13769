"""What rq's work horse runs for every fleet job.

rq forks a horse per job and calls :func:`run_claimed` in it with the
:class:`worker.attempt.Attempt` the worker prepared for the claim (handed over in
:meth:`worker.rq_worker.FleetWorker.perform_job`, never stored in rq's record), so one
pickled rq payload serves every job and the horse needs no extra Redis round trip.

How the attempt ended (a :class:`Handoff`) travels back to the parent through a pipe
opened before the fork, not through a file: on a full disk the output dir can't take even the few
bytes of ``attempt.json``, and the outcome must still be recorded exactly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from scheduler.artifacts import write_manifest
from scheduler.runs_layout import job_file, log_file
from scheduler.states import Outcome
from scheduler.store.errors import UNREACHABLE
from scheduler.store.running import cancel_requested, save_artifacts

from .attempt import Attempt
from .output_stream import LogStreamer, StreamThread
from .proctree import adopt_orphans
from .runner import AttemptResult, run_attempt


# How often a running job's horse looks whether `fleet cancel` asked it to stop: one HGET.
CANCEL_CHECK_S = 1.0


log = logging.getLogger("fleet.worker")


# rq-dashboard's failed page shows a job's exc_info: for a fleet job, the end of its output
# (what an operator needs), not the traceback of this module raising AttemptFailed.
RQ_TAIL_LINES = 20
RQ_TAIL_BYTES = 8192


class AttemptFailed(Exception):
    """Raised in the horse so rq files the attempt under its failed registry (or, canceled,
    its canceled one: worker/rq_worker.py handle_job_failure). ``rq_text`` is what rq keeps
    as the job's exc_info: the outcome and the last lines of the job's output."""

    def __init__(self, message: str, outcome: Outcome | None = None, rq_text: str = ""):
        super().__init__(message)
        self.outcome = outcome
        self.rq_text = rq_text or message


def output_tail(path: str, lines: int = RQ_TAIL_LINES, limit: int = RQ_TAIL_BYTES) -> str:
    """The last ``lines`` lines of the file at ``path`` (read from its last ``limit`` bytes); ""
    when there is none or it cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_claimed(attempt: Attempt | None = None) -> dict[str, Any]:
    ctx = attempt
    if ctx is None:
        raise AttemptFailed("run_claimed called outside a fleet worker (was this job enqueued by plain rq?)")
    try:
        handoff = _run(ctx)
    except OSError as err:  # the worker's own writes into the output dir (disk full, quota, read-only)
        now = time.time()
        handoff = Handoff(AttemptResult(Outcome.CRASHED, None, f"cannot write to {ctx.out_dir}: {err.strerror or err}",
                                        now, now))
    send_result(ctx.result_fd, handoff)
    result = handoff.result
    if result.outcome is not Outcome.FINISHED:
        message = f"{ctx.name} attempt {ctx.number}: {result.outcome}: {result.reason}"
        tail = output_tail(log_file(ctx.out_dir))
        raise AttemptFailed(message, result.outcome,
                            f"{message}\n--- its last lines of output ---\n{tail}" if tail else message)
    return {"exit_code": result.exit_code, "output_dir": ctx.out_dir}


@dataclass(frozen=True)
class Handoff:
    """What the horse tells its worker as it ends: how the attempt ended, and where each
    log or metrics stream stopped if Redis was away for its last lines."""

    result: AttemptResult
    unsent: list[list] = field(default_factory=list)  # LogStreamer.position() of streams left behind
    artifacts_unsent: bool = False  # the artifact manifest is on disk but did not reach Redis

    def to_json(self) -> str:
        return json.dumps({"result": asdict(self.result), "unsent": self.unsent,
                           "artifacts_unsent": self.artifacts_unsent})


def _run(ctx: Attempt) -> Handoff:
    with open(job_file(ctx.out_dir), "w") as fh:
        fh.write(json.dumps(ctx.spec, sort_keys=True))  # json.dump writes it piece by piece: ~0.15 ms a job

    streams: StreamThread | None = None
    client = None
    if ctx.redis_url and ctx.log_key:
        client = _horse_client(ctx)
        files = [LogStreamer(client, ctx.log_key, log_file(ctx.out_dir))]
        if ctx.metrics_key:
            files.append(LogStreamer(client, ctx.metrics_key, ctx.env["FLEET_METRICS"]))
        streams = StreamThread(files)

    cancel_due = time.monotonic() + CANCEL_CHECK_S

    def poll() -> Outcome | None:
        # Called once per poll interval while the command runs: the first call means the job
        # outlived one interval, and only such a job needs its lines streamed as it goes.
        nonlocal cancel_due
        if streams is not None:
            streams.launch()
        # The worker that holds the lease died (e.g. SIGKILL): its lease will be reaped
        # and the job run elsewhere, so this copy must stop now.
        if os.getppid() != ctx.parent_pid:
            return Outcome.LOST
        if _stop_asked(ctx.stop_read_fd):  # a warm stop: SIGTERM, its grace to checkpoint, back to pending
            return Outcome.INTERRUPTED
        if client is not None and ctx.job_key and time.monotonic() >= cancel_due:
            cancel_due = time.monotonic() + CANCEL_CHECK_S
            return Outcome.CANCELED if _cancel_requested(client, ctx.job_key) else None
        return None

    try:
        # The horse's only child is the job, so every other child it comes to have is an orphan of the job.
        # A second byte in the stop pipe while the job has its grace: the worker's cold stop.
        result = run_attempt(ctx.argv, ctx.out_dir, ctx.env, ctx.timeout_s, should_stop=poll,
                             grace_s=ctx.stop_grace_s, end_orphans=adopt_orphans(), lost_grace_s=ctx.lost_grace_s,
                             stop_now=lambda: _stop_byte(ctx.stop_read_fd) == COLD_STOP)
    finally:
        if streams is not None:
            streams.stop()
    artifacts_unsent = _record_artifacts(ctx, client)
    return Handoff(result, [s.position() for s in streams.streams if s.behind] if streams else [], artifacts_unsent)


# What the worker writes into an attempt's stop pipe (rq_worker.py): a warm stop, then maybe a cold one.
WARM_STOP, COLD_STOP = b"s", b"k"


def _stop_byte(fd: int) -> bytes:
    """The next byte the worker wrote into the stop pipe (see Attempt), or b"" if none."""
    if fd < 0:
        return b""
    try:
        return os.read(fd, 1)
    except (BlockingIOError, OSError):
        return b""


def _stop_asked(fd: int) -> bool:
    """Whether the worker asked the job to stop (a warm stop, or a cold one straight away)."""
    return bool(_stop_byte(fd))


def _cancel_requested(client, job_key: str) -> bool:
    """Whether `fleet cancel` asked to stop this job. Seen here, the job gets SIGTERM and its
    grace to save a checkpoint (run_attempt's stop); the worker only notices at its next lease
    renewal, and then kills outright. Redis away: not canceled, the check comes again."""
    try:
        return cancel_requested(client, job_key)
    except UNREACHABLE:
        return False


def _horse_client(ctx: Attempt):
    """rq's own connection in this work horse, already open (rq just used it), instead of a
    new one: connecting cost ~1.5 ms of every job. Thread-safe: redis-py pools per client."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        return job.connection
    from scheduler.settings import Settings

    return Settings(redis_url=ctx.redis_url).connect()


def send_result(fd: int, handoff: Handoff) -> None:
    """Hand the outcome to the parent worker: at most a few KiB (held-back lines are cut to
    4 KiB each), below the pipe's 64 KiB buffer, so the write never blocks."""
    if fd < 0:
        return
    try:
        os.write(fd, handoff.to_json().encode())
    except OSError as err:
        log.error("could not hand the result of this attempt to the worker: %s", err)


def receive_result(fd: int) -> Handoff | None:
    """The parent's side: whatever the horse wrote (None if it died before writing)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks)) if chunks else None
        return Handoff(AttemptResult(**data["result"]), list(data.get("unsent") or []),
                       bool(data.get("artifacts_unsent"))) if data else None
    except (ValueError, TypeError, KeyError):
        return None


def _record_artifacts(ctx: Attempt, client) -> bool:
    """Hash the attempt's outputs (still under its lease) and keep the manifest beside them and in Redis;
    True if it is on disk but Redis could not take it (the worker stores it later)."""
    try:
        manifest = write_manifest(ctx.out_dir)
    except OSError as err:  # e.g. a full disk: the attempt's own outcome stands, verify will say why
        log.warning("could not hash the outputs of %s attempt %d: %s", ctx.name, ctx.number, err)
        return False
    if client is not None and ctx.artifacts_key:
        try:
            save_artifacts(client, ctx.artifacts_key, json.dumps(manifest, sort_keys=True))
        except UNREACHABLE as err:
            log.warning("artifact manifest of %s kept on disk only (Redis: %s)", ctx.name, type(err).__name__)
            return True
    return False
