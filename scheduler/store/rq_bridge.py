"""rq's re-enqueue paths, brought back to fleet.

rq requeues a job (``rq requeue``, rq-dashboard's requeue button, a Retry) by
pushing its id onto the queue's list. No fleet worker pops that list, so a fleet
worker absorbs it instead: each id becomes a ``retry`` of the fleet job, which puts
it back into fleet's pending index (failed or canceled jobs) or leaves it where it
is (already pending or running); ids fleet does not know are left for rq.
"""

from __future__ import annotations

import logging

from ..keys import Keys
from .actions import apply_action

log = logging.getLogger("fleet.rq")
BATCH = 100


def register_rq_queue(redis, queue) -> None:
    """rq lists queues from a set of its own (rq info, rq-dashboard); fleet never pushes to the
    queue's list, where rq would add it, so it is added here."""
    redis.sadd(queue.redis_queues_keys, queue.key)


def queue_rq_job_read(pipe, job) -> None:
    """Add the read of rq's record of ``job`` (its hash, for ``Job.restore``) to ``pipe``."""
    pipe.hgetall(job.key)


def pop_requeued(pipe, queue_list_key: str) -> None:
    """Queue the pop :func:`absorb_rq_requeues` makes onto a caller's pipeline, to save a round
    trip; hand the reply to it as ``popped``."""
    pipe.lpop(queue_list_key, BATCH)


def absorb_rq_requeues(redis, keys: Keys, queue_list_key: str, popped: list | None = None) -> int:
    """Move ids rq pushed onto its queue list back into fleet; returns how many were retried.
    ``popped``: the reply of :func:`pop_requeued`, if the caller already popped them."""
    raw = redis.lpop(queue_list_key, BATCH) if popped is None else popped
    ids = [i.decode() if isinstance(i, bytes) else i for i in (raw or [])]
    if not ids:
        return 0
    ours = [i for i in ids if redis.exists(keys.job(i))]
    foreign = [i for i in ids if i not in ours]
    if foreign:
        redis.rpush(queue_list_key, *foreign)  # not fleet's: give them back to rq untouched
    retried = 0
    # Each requeue is a request of its own: one that does not apply leaves the others alone.
    for result in apply_action(redis, keys, "retry", ours, all_or_nothing=False):
        if result.ok:
            retried += 1
            log.info("rq requeued %s: pending in fleet again", result.job_id)
    return retried


def restore_rq_job(redis, keys: Keys, job_id: str, name: str) -> dict:
    """Write back the rq job record of a fleet job that lost it (expired after rq's result or
    failure TTL, loading.RQ_RESULT_TTL_S; rq-dashboard's Delete button, `rq empty`, an
    operator's DEL) and return it as HGETALL does: the fields a load writes, so
    the job runs and rq's tools see it again. Without it the worker's rq layer could not run
    the job, and every worker that claimed it died (a poison job)."""
    import time

    from .loading import rq_template, rq_timestamp

    template = rq_template(keys.queue_name)
    key = keys.rq_job(job_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, mapping=dict(zip(template[::2], template[1::2])))
    pipe.hset(key, mapping={"description": name, "status": "queued",
                            "created_at": rq_timestamp(time.time())})
    pipe.hgetall(key)
    restored = pipe.execute()[-1]
    log.info("job %s (%s) had no rq record (expired, or deleted through rq): wrote it back", name, job_id)
    return restored
