"""The attempt records ``fleet prune`` reads and marks: which output dirs moved to the archive
(archive.lua; scheduler/prune.py decides what moves and makes the moves)."""

from __future__ import annotations

from typing import Iterator

from ..keys import Keys
from .queries import decode_attempts
from .scripts import Scripts


class AttemptArchive:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._scripts: Scripts | None = None  # registered on first use: a dry run needs none

    def jobs_with_attempts(self, page: int) -> Iterator[tuple[str, str, list[dict]]]:
        """(job_id, name, attempts) of every job that has attempts, in load order, read ``page``
        jobs per round trip: a prune walks the whole store, never all of it at once."""
        offset = 0
        while True:
            ids = [i.decode() for i in self.redis.zrange(self.keys.jobs, offset, offset + page - 1)]
            if not ids:
                return
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), "name")
                pipe.lrange(self.keys.attempts(job_id), 0, -1)
            replies = pipe.execute()
            for job_id, name, raw in zip(ids, replies[::2], replies[1::2]):
                if raw:
                    yield job_id, (name or b"?").decode(), decode_attempts(self.keys.attempts(job_id), raw)
            offset += page

    def mark(self, job_id: str, attempt: int, source: str, target: str, now: float) -> str:
        """Record that the attempt's outputs move from ``source`` to ``target``, before they move:
        "ok", or why nothing was written ("gone", "running", "moved", "other"; see archive.lua)."""
        return self._call("mark", job_id, attempt, source, target, now)

    def unmark(self, job_id: str, attempt: int, source: str, target: str, now: float) -> str:
        """Take a mark back: the move itself failed, the outputs are still at ``source``."""
        return self._call("unmark", job_id, attempt, source, target, now)

    def _call(self, op: str, job_id: str, attempt: int, source: str, target: str, now: float) -> str:
        if self._scripts is None:
            self._scripts = Scripts(self.redis, names=("archive",))
        reply = self._scripts.archive(keys=[self.keys.attempts(job_id)], args=[op, attempt, source, target, now])
        return reply.decode() if isinstance(reply, bytes) else reply
