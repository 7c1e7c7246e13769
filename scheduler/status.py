"""The ``fleet status`` document: counts, workers, what nobody can run, recent failures.

Built from counters and indexes only (per-state sizes, per-class sizes, the worker
registry), never by scanning jobs, so it costs the same few round trips at 100
jobs as at 100,000.
"""

from __future__ import annotations

import time

from .matching import class_reason, free_of
from .states import JobState
from .store.workers import list_workers

RECENT_FAILURES = 5
SAMPLE_NAMES = 5


def status_document(store) -> dict:
    now = time.time()
    redis, keys = store.redis, store.keys
    counts = store.jobs.counts()
    workers = list_workers(redis, keys, now)
    hosts = store.hosts()
    classes = store.classes()
    pipe = redis.pipeline(transaction=False)
    for class_id in classes:
        pipe.zcard(keys.pending(class_id))
    sizes = dict(zip(classes, pipe.execute()))
    live = [w for w in workers if w.live]
    stuck = []
    for class_id, cls in classes.items():
        if not sizes[class_id]:
            continue
        if not any(class_reason(cls, w.host, w.host.hostname in hosts, free_of(w.host)) is None for w in live):
            stuck.append((class_id, cls))
    pipe = redis.pipeline(transaction=False)
    for class_id, _ in stuck:
        pipe.zrange(keys.pending(class_id), 0, SAMPLE_NAMES - 1)
    pipe.zrevrange(keys.state(JobState.FAILED.value), 0, RECENT_FAILURES - 1)
    replies = pipe.execute()
    sample_ids = [[i.decode() for i in ids] for ids in replies[:-1]]
    failed_ids = [i.decode() for i in replies[-1]]
    names, failed = store.jobs.names_and_records([i for ids in sample_ids for i in ids], failed_ids)
    records = {r.job_id: r for r in failed}
    worker_docs = []
    for w in workers:
        doc = w.to_json(now)
        doc["declared"] = w.host.hostname in hosts  # False: not in [hosts], admitted with defaults
        worker_docs.append(doc)
    return {
        "jobs": counts,
        "workers": worker_docs,
        "unrunnable": [{"pending": int(sizes[cid]), "jobs": [names[i] for i in ids if i in names],
                        "needs": cls.to_dict()} for (cid, cls), ids in zip(stuck, sample_ids)],
        "recent_failures": [{"job_id": i, "name": records[i].name, "reason": records[i].reason,
                             "host": records[i].host} for i in failed_ids if i in records],
    }
