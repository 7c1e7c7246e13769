"""Run one job attempt as a command in its own process group, and end it cleanly.

The command is an argv list (never a shell string): manifest strings can't inject
shell syntax. Timeout, cancel, a lost lease and the death of the worker all end
the whole process group plus any descendant that left it, so no grandchild
outlives its attempt. A work horse also adopts the orphans of its job
(:func:`worker.proctree.adopt_orphans`), so a helper that left the job's session (setsid, a
daemon's double fork) is found and ended too, even after a clean exit: left
running, it would hold GPU memory the ledger already gave to the next job.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from scheduler.errors import FleetError
from scheduler.manifest.command import CommandError, check_argv, fill_arg, runtime_fields
from scheduler.runs_layout import attempt_file, log_file, result_file, temp_file
from scheduler.states import Outcome

from .proctree import KILL_GRACE_S, ExitWatch, end_adopted, kill_tree, reap_exited_orphans, signal_group, stop_tree

log = logging.getLogger("fleet.worker")
POLL_S = 0.2


class RunError(FleetError):
    """An attempt could not even start (bad command, unsafe name, unwritable output dir)."""


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    exit_code: int | None
    reason: str
    started_at: float
    ended_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def build_argv(spec: Mapping[str, Any], job_id: str, out_dir: str, attempt: int,
               parent_dirs: Mapping[str, str] | None = None, resume_dir: str = "") -> list[str]:
    """The argv for a job: its ``command`` with ``{placeholders}`` filled, or its ``entrypoint``.

    Filled by the same code the loader checks commands with (scheduler.manifest.command), so
    a command that loaded fills here; ``parent_dirs`` maps each finished ``after`` job to its
    output dir, for ``{after.<job>.output_dir}``; ``resume_dir`` fills ``{resume_dir}``."""
    command = spec.get("command") or []
    if command:
        fields = runtime_fields(spec, job_id, out_dir, attempt, resume_dir)
        try:  # checked again here: the real output dirs are longer than the loader's stand-ins
            argv = [fill_arg(str(arg), fields, parent_dirs or {}) for arg in command]
            check_argv(argv)
            return argv
        except CommandError as err:
            raise RunError(f"job {spec.get('name')!r}: cannot fill placeholders in command: {err}") from None
    if spec.get("entrypoint"):
        return [sys.executable, "-m", "worker.entry", spec["entrypoint"]]
    raise RunError(f"job {spec.get('name')!r} has neither command nor entrypoint; set one in the job or in "
                   f"[defaults]")


def run_attempt(argv: list[str], out_dir: str, env: Mapping[str, str], timeout_s: float = 0,
                should_stop: Callable[[], Outcome | None] | None = None, grace_s: float = KILL_GRACE_S,
                end_orphans: bool = False, lost_grace_s: float = KILL_GRACE_S,
                stop_now: Callable[[], bool] | None = None) -> AttemptResult:
    """Run ``argv`` to completion; ``should_stop`` is polled and may return an outcome that ends it early.

    Output goes to ``out_dir/log.txt``; the result is also kept in ``out_dir/attempt.json``
    when the disk allows. ``end_orphans``: this process adopted the job's orphans
    (:func:`worker.proctree.adopt_orphans`) and ends them with the job. A stop gives the job ``grace_s`` to
    save a checkpoint, except a lost one (the worker died): its lease runs out soon and the
    reaper then hands the job to another worker, so it gets only ``lost_grace_s``, which must
    end before that (:func:`worker.rq_worker.lost_grace_s`). ``stop_now`` returning True during
    that grace ends it at once (the worker's second SIGTERM).
    """
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    started = time.time()
    with open(log_file(out_dir), "ab", buffering=0) as output:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                    env=dict(env), cwd=out_dir, start_new_session=True, close_fds=True)
        except OSError as err:
            result = AttemptResult(Outcome.FAILED, None, f"cannot start {argv[0]!r}: {err.strerror}", started, time.time())
            _write_result(out_dir, result)
            return result
        outcome, reason = None, ""
        watch = ExitWatch(proc.pid)
        try:
            while not watch.wait(POLL_S):
                if end_orphans:
                    reap_exited_orphans(proc.pid)
                if timeout_s and time.time() - started > timeout_s:
                    outcome, reason = Outcome.TIMEOUT, f"timeout_s {timeout_s:g} exceeded"
                elif should_stop is not None:
                    stop = should_stop()
                    if stop:
                        outcome, reason = stop, f"stopped: {stop}"
                if outcome:
                    stop_tree(proc.pid, lost_grace_s if outcome is Outcome.LOST else grace_s, cut_short=stop_now)
                    break
        finally:
            watch.close()
        # Descendants that outlived the leader (daemonised helpers) must not outlive the attempt.
        # The leader is still unreaped here, so its pid (the group id) cannot belong to anyone else.
        if outcome is None:
            # It exited by itself: the kernel reparented its children as it exited, so a search for
            # them finds none (and cost ~4 ms a job reading /proc); what is left is its group.
            signal_group(proc.pid, signal.SIGKILL)
        else:
            kill_tree(proc.pid, signal.SIGKILL)
        if end_orphans:
            escaped = end_adopted(proc.pid)
            if escaped:
                log.warning("ended %d process(es) that left the job's session and outlived it", escaped)
        code = proc.wait()
    if outcome is None:
        outcome = Outcome.FINISHED if code == 0 else Outcome.FAILED
        reason = "" if code == 0 else _describe_exit(code)
    result = AttemptResult(outcome, code, reason, started, time.time())
    _write_result(out_dir, result)
    return result


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _write_result(out_dir: str, result: AttemptResult) -> None:
    """Keep the outcome beside the outputs for people and tools; best effort, because the
    worker learns it through a pipe and a full disk must not turn a result into a crash."""
    path = attempt_file(out_dir)
    tmp = temp_file(path)
    try:
        with open(tmp, "w") as fh:
            fh.write(result.to_json())
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        log.warning("attempt.json not written in %s: %s", out_dir, err.strerror)


MAX_SUMMARY_BYTES = 64 * 1024


def read_summary(out_dir: str) -> dict[str, Any] | None:
    """The job's own result.json (its final metrics), if it wrote a JSON object of sane size."""
    path = result_file(out_dir)
    try:
        if os.path.getsize(path) > MAX_SUMMARY_BYTES:
            return None
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
