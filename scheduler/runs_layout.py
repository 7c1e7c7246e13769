"""The runs dir's layout, written by the worker, read by prune, reporting, demo and verify.

Every path under a runs dir is built here and nowhere else, so the writer (the worker and
its horse) and the readers (`fleet prune`, `scheduler.report()`, `fleet demo`'s summary,
`fleet verify` through ``scheduler/artifacts.py``) cannot drift apart::

    <runs>/<name>-<job_id>/attempt-<n>/       one attempt's output dir ($FLEET_OUTPUT_DIR)
        job.json        the job spec ($FLEET_JOB_FILE), written by the horse before the command
        log.txt         the command's stdout and stderr
        metrics.jsonl   $FLEET_METRICS: one JSON line per scheduler.report()
        result.json     the job's summary, scheduler.report(final=True)
        attempt.json    how the attempt ended (worker/runner.py)
        artifacts.json  the hash manifest of all the rest (scheduler/artifacts.py)
    <runs>/archive/<UTC stamp>/<name>-<job_id>/attempt-<n>/   where `fleet prune` moves one

A file is written to its name plus TMP_SUFFIX and renamed, so a reader never sees half of
it, and the manifest leaves such files out.
"""

from __future__ import annotations

import os
import re
import time

from .errors import FleetError

JOB_FILE = "job.json"
LOG_FILE = "log.txt"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
ATTEMPT_FILE = "attempt.json"
MANIFEST_FILE = "artifacts.json"
TMP_SUFFIX = ".tmp"
ARCHIVE_DIR = "archive"
ATTEMPT_DIR_RE = re.compile(r"[^/\x00]+-[0-9a-f]{16}/attempt-[0-9]+")  # relative to the runs dir
ARCHIVED_DIR_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z/" + ATTEMPT_DIR_RE.pattern)  # relative to <runs>/archive
ARCHIVE_STAMP = "%Y%m%dT%H%M%SZ"  # UTC, as ARCHIVED_DIR_RE matches it


class UnsafePathError(FleetError):
    """A job name or id that could make its output dir escape the runs dir."""


def output_dir(runs_dir: str, job_name: str, job_id: str, attempt: int) -> str:
    """``<runs_dir>/<name>-<job_id>/attempt-<n>``, refusing anything that could escape runs_dir."""
    # Imported here: every job that calls scheduler.report() imports this module, and the
    # manifest package costs it ~65 ms; only the worker and the demo build output dirs.
    from .manifest.identity import JOB_ID_RE
    from .manifest.loader import safe_name

    if not safe_name(job_name) or not JOB_ID_RE.fullmatch(job_id) or attempt < 1:
        raise UnsafePathError(f"refusing unsafe output path for job {job_name!r} ({job_id!r}); job names must be "
                              f"path-safe and ids 16 hex digits")
    root = os.path.realpath(runs_dir)
    path = os.path.join(root, f"{job_name}-{job_id}", f"attempt-{attempt}")
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise UnsafePathError(f"output dir for job {job_name!r} escapes {root}")
    return path


def job_file(out_dir: str) -> str:
    return os.path.join(out_dir, JOB_FILE)


def log_file(out_dir: str) -> str:
    return os.path.join(out_dir, LOG_FILE)


def metrics_file(out_dir: str) -> str:
    return os.path.join(out_dir, METRICS_FILE)


def result_file(out_dir: str) -> str:
    return os.path.join(out_dir, RESULT_FILE)


def attempt_file(out_dir: str) -> str:
    return os.path.join(out_dir, ATTEMPT_FILE)


def manifest_file(out_dir: str) -> str:
    return os.path.join(out_dir, MANIFEST_FILE)


def temp_file(path: str) -> str:
    """Where ``path`` is written before it is renamed into place."""
    return path + TMP_SUFFIX


def archive_dir(runs_dir: str, now: float) -> str:
    """The dir one prune run at ``now`` moves its attempts into."""
    return os.path.join(runs_dir, ARCHIVE_DIR, time.strftime(ARCHIVE_STAMP, time.gmtime(now)))


def archived_path(runs_dir: str, archive: str, out_dir: str) -> str:
    """Where attempt dir ``out_dir`` (under ``runs_dir``) goes in :func:`archive_dir` ``archive``."""
    return os.path.join(archive, os.path.relpath(os.path.realpath(out_dir), runs_dir))


def is_attempt_dir(runs_dir: str, path: str) -> bool:
    """Whether ``path`` is an attempt's output dir under ``runs_dir``."""
    return _laid_out(runs_dir, ATTEMPT_DIR_RE, path)


def is_archived_attempt_dir(runs_dir: str, path: str) -> bool:
    """Whether ``path`` is an archived attempt's dir under ``runs_dir``'s archive."""
    return _laid_out(os.path.join(runs_dir, ARCHIVE_DIR), ARCHIVED_DIR_RE, path)


def _laid_out(root: str, layout: re.Pattern, path: str) -> bool:
    """Whether ``path`` resolves inside ``root`` in fleet's own ``layout``: paths read from
    Redis are not trusted, so nothing else is ever moved, or moved into."""
    real = os.path.realpath(path)
    return os.path.commonpath([root, real]) == root and bool(layout.fullmatch(os.path.relpath(real, root)))
