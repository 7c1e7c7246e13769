"""One row of ``fleet jobs``: the job's summary with its REASON, times and PROGRESS.

Pure, over a :class:`scheduler.store.views.JobsView`; ``fleet jobs --json``, the Python
``Client.jobs()`` and the table all come from :func:`job_row`, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from .reasons import reason_phrase
from .states import JobState
from .store.queries import JobRecord
from .store.views import JobsView

# Metric names a job reports its progress by: the newest line holding one of these pairs wins.
PROGRESS_PAIRS = (("step", "total"), ("step", "total_steps"), ("epoch", "epochs"), ("epoch", "total_epochs"))
PROGRESS_ALONE = ("epoch", "step")


def job_row(record: JobRecord, view: JobsView) -> dict[str, Any]:
    """The documented ``fleet jobs --json`` row: :meth:`JobRecord.summary` plus ``in_manifest``,
    ``state_at`` (when it entered its state), ``reason``,
    ``started_at`` and ``ended_at`` of the latest attempt (epoch seconds or None),
    ``elapsed_s`` (so far while it runs), ``progress`` ("13/40", "epoch 3" or None) and ``gpu``
    (the latest attempt's GPUs, their keys comma-separated as `fleet status` lists them, or None)."""
    last = view.last_attempts.get(record.job_id) or {}
    started, ended = _number(last.get("started_at")), _number(last.get("ended_at"))
    if record.state is JobState.RUNNING:
        ended = None  # the latest attempt is the running one
    elapsed = None
    if started is not None:
        elapsed = round(max(0.0, (ended if ended is not None else view.now) - started), 1)
    return {**record.summary(), "in_manifest": record.in_manifest, "state_at": record.state_at,
            "reason": reason_phrase(record, view), "started_at": started, "ended_at": ended,
            "elapsed_s": elapsed, "progress": progress_of(view.latest_metrics.get(record.job_id, [])),
            "gpu": last.get("gpu") or None}


def progress_of(lines: list[dict]) -> str | None:
    """How far a job says it is, from its newest metrics lines (newest first): ``13/40`` from
    ``{"step": 13, "total": 40}`` (or epoch/epochs), ``epoch 3`` from an epoch alone."""
    for line in lines:
        for done, total in PROGRESS_PAIRS:
            if _is_count(line.get(done)) and _is_count(line.get(total)):
                return f"{_count(line[done])}/{_count(line[total])}"
        for name in PROGRESS_ALONE:
            if _is_count(line.get(name)):
                return f"{name} {_count(line[name])}"
    return None


def duration(seconds: float | None) -> str:
    """An elapsed time as squeue prints TIME: ``5:07``, ``1:02:03``, ``2-03:04:05``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{s:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{s:02d}"
    return f"{minutes}:{s:02d}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) < 1e15


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
