"""The attempts of a time window, as ``fleet history`` (sacct's counterpart) reads them.

finish.lua lists every attempt that ends in the history zset, scored by when it ended; the
running attempts are the running index's. So a window costs reads in proportion to the
attempts in it (and those running now), never a scan of every job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..states import JobState
from .queries import decode_attempts, parse_spec

if TYPE_CHECKING:
    from .store import Store

READ_BATCH = 500  # attempts read per round trip


@dataclass(frozen=True)
class AttemptSeen:
    """One attempt as the history shows it: its record (claim.lua and finish.lua wrote it) and
    the job's name and model."""

    job_id: str
    name: str
    model: str
    record: dict


def read_window(store: Store, since: float, until: float) -> list[AttemptSeen]:
    """Every attempt that ran at some moment in [since, until]: those that ended at ``since`` or
    later and started by ``until``, and those running now that started by ``until``; oldest
    start first."""
    redis, keys = store.redis, store.keys
    pipe = redis.pipeline(transaction=False)
    pipe.zrangebyscore(keys.history, since, "+inf")
    pipe.zrange(keys.state(JobState.RUNNING.value), 0, -1)
    ended, running = pipe.execute()
    wanted: list[tuple[str, int | None]] = []  # (job id, attempt number; None: its latest)
    for member in ended:
        job_id, _, number = member.decode().rpartition(":")
        if number.isdigit():
            wanted.append((job_id, int(number)))
    wanted += [(m.decode(), None) for m in running]
    seen: list[AttemptSeen] = []
    for start in range(0, len(wanted), READ_BATCH):
        seen += _read_batch(store, wanted[start:start + READ_BATCH])
    window = [a for a in seen if _started(a) is not None and _started(a) <= until]
    return sorted(window, key=lambda a: (_started(a), a.job_id, a.record.get("attempt", 0)))


def _read_batch(store: Store, wanted: list[tuple[str, int | None]]) -> list[AttemptSeen]:
    redis, keys = store.redis, store.keys
    pipe = redis.pipeline(transaction=False)
    for job_id, number in wanted:
        pipe.lindex(keys.attempts(job_id), -1 if number is None else number - 1)
        pipe.hget(keys.job(job_id), "name")
        pipe.get(keys.spec(job_id))
    replies = pipe.execute(raise_on_error=False)
    out = []
    for i, (job_id, number) in enumerate(wanted):
        raw, name, spec = replies[3 * i:3 * i + 3]
        if not isinstance(raw, bytes):
            continue  # the job's attempts were removed or are damaged: nothing to show
        record = decode_attempts(keys.attempts(job_id), [raw])[0]
        if number is None and "ended_at" in record:
            continue  # it ended between the two reads: the history zset lists it next time
        try:
            model = str(parse_spec(keys.spec(job_id), spec).get("model", "")) if isinstance(spec, bytes) else ""
        except StoreError:  # a damaged spec: the attempt is still shown, without its model
            model = ""
        out.append(AttemptSeen(job_id, name.decode(errors="replace") if isinstance(name, bytes) else job_id,
                               model, record))
    return out


def _started(seen: AttemptSeen) -> float | None:
    value = seen.record.get("started_at")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
