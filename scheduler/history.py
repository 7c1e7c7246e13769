"""``fleet history``: what ran where in a window, like ``sacct``, and its totals, like ``sreport``.

Pure over what scheduler/store/history.py read. A window is given as ``--since 2h`` (or
``30m``, ``7d``, ``90s``), a date (``2026-12-01``) or a local date and time
(``2026-12-01T08:00``, ``2026-12-01 08:00``); the default is the last 24 hours.
Accounting: an attempt counts its GPUs and its reserved cores (at least one, as Slurm
allocates at least one CPU) for the part of it that lies inside the window.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from .errors import UsageError
from .states import Outcome
from .store.history import AttemptSeen

DEFAULT_WINDOW_S = 86400.0
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
RUNNING = "running"  # the outcome column of an attempt that has not ended


def parse_when(text: str, flag: str, now: float) -> float:
    """``text`` as epoch seconds: "2h" is two hours before ``now``; a date or date and time is
    local time. Anything else is a UsageError naming ``flag`` and the forms it takes."""
    match = _RELATIVE.match(text.strip().lower())
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give an age (90s, 30m, 2h, 7d, 1w) or a local date or time "
                         f"(2026-12-01, 2026-12-01T08:00)") from None


def window(since: str | None, until: str | None, now: float | None = None) -> tuple[float, float]:
    """The window (since, until) in epoch seconds; the default is the 24 hours up to now."""
    now = time.time() if now is None else now
    end = parse_when(until, "--until", now) if until else now
    start = parse_when(since, "--since", now) if since else end - DEFAULT_WINDOW_S
    if start > end:
        raise UsageError(f"--since is after --until ({_iso(start)} > {_iso(end)}); swap them")
    return start, end


def parse_outcomes(words: tuple[str, ...]) -> tuple[str, ...]:
    """The outcomes ``--state`` names (an attempt's: finished, failed, timeout, ..., or running);
    an unknown word is a UsageError listing them."""
    known = tuple(o.value for o in Outcome) + (RUNNING,)
    for word in words:
        if word not in known:
            raise UsageError(f"--state {word!r}: an attempt's outcome is one of {', '.join(known)}")
    return words


def history_row(seen: AttemptSeen) -> dict[str, Any]:
    """The documented ``fleet history --json`` row."""
    rec = seen.record
    return {"job_id": seen.job_id, "name": seen.name, "attempt": rec.get("attempt"), "host": rec.get("host"),
            "worker": rec.get("worker"), "gpus": gpus_of(rec), "started_at": rec.get("started_at"),
            "ended_at": rec.get("ended_at"), "outcome": rec.get("outcome", RUNNING),
            "exit_code": rec.get("exit_code")}


def select(seen: list[AttemptSeen], host: str | None = None, outcomes: tuple[str, ...] = ()) -> list[AttemptSeen]:
    """The attempts on hosts matching the ``host`` glob whose outcome is one of ``outcomes``
    ("running" for those that have not ended); all when not given."""
    return [a for a in seen
            if (host is None or fnmatchcase(str(a.record.get("host") or ""), host))
            and (not outcomes or a.record.get("outcome", RUNNING) in outcomes)]


def summary(seen: list[AttemptSeen], since: float, until: float, now: float) -> dict[str, Any]:
    """GPU-hours and core-hours per host and per model over the window, as ``sreport`` totals
    them: each attempt's time inside [since, until] (a running one up to now)."""
    by_host: dict[str, dict[str, float]] = {}
    by_model: dict[str, dict[str, float]] = {}
    for a in seen:
        rec = a.record
        start = max(since, float(rec.get("started_at") or since))
        end = min(until, float(rec.get("ended_at") or now))
        hours = max(0.0, end - start) / 3600
        gpus = gpus_of(rec)
        cores = max(1.0, float(rec.get("cores") or 0))
        for table, key in ((by_host, str(rec.get("host") or "-")), (by_model, a.model or "-")):
            total = table.setdefault(key, {"attempts": 0, "hours": 0.0, "gpu_hours": 0.0, "core_hours": 0.0})
            total["attempts"] += 1
            total["hours"] += hours
            total["gpu_hours"] += hours * gpus
            total["core_hours"] += hours * cores

    def rounded(table: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        return [{"name": key, "attempts": int(v["attempts"]), "hours": round(v["hours"], 6),
                 "gpu_hours": round(v["gpu_hours"], 6), "core_hours": round(v["core_hours"], 6)}
                for key, v in sorted(table.items())]

    return {"since": since, "until": until, "hosts": rounded(by_host), "models": rounded(by_model)}


def gpus_of(record: dict) -> int:
    """How many GPUs an attempt held: its record's ``gpu`` lists their ledger keys, comma-separated
    (claim.lua), "" for none."""
    return len([g for g in str(record.get("gpu") or "").split(",") if g])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(timespec="seconds")
