"""The ``fleet status`` document: counts, workers, what nobody can run, recent failures.

Pure functions over what the store reads (:class:`FleetView`, from counters and indexes
only, never by scanning jobs, so it costs the same few round trips at 100 jobs as at
100,000); :func:`status_document` is the one place that asks the store.
"""

from __future__ import annotations

import time

from .matching import class_reason, free_of
from .store.views import FleetView

RECENT_FAILURES = 5
SAMPLE_NAMES = 5


def status_document(store) -> dict:
    """The document `fleet status --json` prints, from four round trips at most."""
    view = store.fleet_view(RECENT_FAILURES, now=time.time())
    stuck = unrunnable(view)
    return document(view, store.pending_names(stuck, SAMPLE_NAMES))


def unrunnable(view: FleetView) -> list[str]:
    """The classes with pending jobs that no live worker can run even when idle, in the store's
    order: the same rule (and the same host defaults for a host not in [hosts]) as the claim."""
    live = [w for w in view.workers if w.live]
    return [class_id for class_id, cls in view.classes.items() if view.pending.get(class_id) and
            not any(class_reason(cls, w.host, w.host.hostname in view.hosts, free_of(w.host)) is None
                    for w in live)]


def document(view: FleetView, sample_names: dict[str, list[str]]) -> dict:
    """The documented ``fleet status --json`` shape; ``sample_names`` names a few waiting jobs of
    each unrunnable class (those without a name left out)."""
    worker_docs = []
    for w in view.workers:
        doc = w.to_json(view.now)
        doc["declared"] = w.host.hostname in view.hosts  # False: not in [hosts], admitted with defaults
        worker_docs.append(doc)
    return {
        "jobs": view.counts,
        "workers": worker_docs,
        "unrunnable": [{"pending": int(view.pending[cid]), "jobs": sample_names.get(cid, []),
                        "needs": view.classes[cid].to_dict()} for cid in unrunnable(view)],
        "recent_failures": [{"job_id": r.job_id, "name": r.name, "reason": r.reason, "host": r.host}
                            for r in view.recent_failures],
    }
