"""`fleet compare`'s table: final metrics side by side, with the identity fields that differ.

Pure: records and their results in, rows out, ranked by one metric. The CLI
(scheduler/commands/results.py) and Client.compare (the dashboard's compare page) both print it.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import NotFoundError, UsageError
from .manifest.fields import SCHEDULING_FIELDS
from .store.queries import JobRecord


def flatten(spec: dict[str, Any], skip: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """Identity fields as flat columns: hyper.lr, hyper.epochs, seed, mode, ..."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if not prefix and key in skip:
            continue
        if isinstance(value, dict):
            out.update(flatten(value, skip, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare_rows(records: list[JobRecord], results: list[dict | None], sort: str | None = None,
                 ascending: bool = False) -> tuple[list[dict], list[JobRecord], list[str]]:
    """The table (one row per job with a result: name, job_id, the identity fields that differ,
    every metric), the records in its order, and the metric names. Ranked by ``sort`` (default:
    the first metric by name), highest first unless ``ascending``; jobs without it last."""
    rows = [(record, flatten(record.spec, skip=SCHEDULING_FIELDS), result)
            for record, result in zip(records, results) if result is not None]
    if not rows:
        raise NotFoundError("none of these jobs has a finished result yet (jobs write result.json; "
                            "see scheduler.report)")
    differing = sorted(k for k in set().union(*(set(f) for _, f, _ in rows))
                       if len({json.dumps(f.get(k), sort_keys=True) for _, f, _ in rows}) > 1)
    metrics = sorted(set().union(*(set(m) for _, _, m in rows)))
    sort_key = sort or (metrics[0] if metrics else None)
    if sort_key and sort_key not in metrics:
        raise UsageError(f"--sort {sort_key!r}: no such metric; the results have {', '.join(metrics)}")
    ranked = sorted((row for row in rows if is_number(row[2].get(sort_key))), key=lambda row: row[2][sort_key],
                    reverse=not ascending)
    rows = ranked + [row for row in rows if not is_number(row[2].get(sort_key))]  # unranked last
    table = [{"name": r.name, "job_id": r.job_id, **{k: f.get(k) for k in differing},
              **{m: res.get(m) for m in metrics}} for r, f, res in rows]
    return table, [r for r, _, _ in rows], metrics
