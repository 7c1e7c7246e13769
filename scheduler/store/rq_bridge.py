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


def clear_dead_rq_workers(redis, keys: Keys, now: float) -> list[str]:
    """Unregister from rq the workers fleet knows are dead (their fleet record's heartbeat is
    older than its lease), as rq's own cleanup does once a dead
    worker's key expires, minutes later: until then `rq info` and rq-dashboard list a
    SIGKILLed worker as busy. A worker that registered its death (a clean stop) is rq's own
    business, and so is one without a fleet record: a worker registers with rq a moment
    before its first publish, and one whose record expired (a day) has long left rq's
    registry on its own. Returns the rq names cleared. A slot's rq name is "<worker>:<slot>"
    (worker/slots.py rq_name)."""
    members = [m.decode() for m in redis.smembers(keys.rq_workers)]
    rq_names = [m[len(keys.rq_worker_prefix):] for m in members if m.startswith(keys.rq_worker_prefix)]
    if not rq_names:
        return []
    owners = [_fleet_name(name) for name in rq_names]
    pipe = redis.pipeline(transaction=False)
    for name, owner in zip(rq_names, owners):
        pipe.hmget(keys.rq_worker_prefix + name, "death", "birth")
        pipe.hmget(keys.worker(owner), "heartbeat", "lease_s")
    replies = pipe.execute(raise_on_error=False)
    dead = []
    for i, name in enumerate(rq_names):
        rq_fields, fields = replies[2 * i], replies[2 * i + 1]
        if not isinstance(rq_fields, list) or rq_fields[0] or not isinstance(fields, list) or fields[0] is None:
            continue  # stopped cleanly (rq's business), or not yet published: a worker starting up
        try:
            heartbeat, lease_s = float(fields[0] or 0), float(fields[1] or 30)
        except ValueError:
            continue  # a damaged record: fleet's own readers say so; rq's entry is left as it is
        if now - heartbeat > lease_s and _born(rq_fields[1]) <= heartbeat:
            dead.append(name)  # (born after that heartbeat: a restart under the name, not yet published)
    if dead:
        pipe = redis.pipeline(transaction=True)
        for name in dead:
            pipe.srem(keys.rq_workers, keys.rq_worker_prefix + name)
            pipe.srem(keys.rq_workers_of_queue, keys.rq_worker_prefix + name)
            pipe.delete(keys.rq_worker_prefix + name)
        pipe.execute()
        log.info("unregistered dead worker(s) %s from rq's registry", ", ".join(dead))
    return dead


def _born(raw: bytes | None) -> float:
    """rq's ``birth`` field (its utcformat, "2026-12-03T16:13:46.123456Z") as epoch seconds; 0
    when absent or unreadable (then only fleet's heartbeat decides)."""
    from datetime import datetime, timezone

    try:
        text = raw.decode().rstrip("Z") if raw else ""
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() if text else 0.0
    except ValueError:
        return 0.0


def _fleet_name(rq_name: str) -> str:
    """The fleet worker an rq worker name belongs to: a slot's "<worker>:<slot>" is <worker>'s."""
    head, sep, slot = rq_name.rpartition(":")
    return head if sep and slot.isdigit() else rq_name
