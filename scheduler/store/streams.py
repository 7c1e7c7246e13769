"""An attempt's output and metrics as they reached Redis: the streams the horse writes
(worker/output_stream.py) and ``fleet logs``, ``fleet metrics`` and ``fleet job`` read."""

from __future__ import annotations

import json

from ..keys import Keys
from .scripts import Scripts

LATEST_METRICS_WINDOW = 20  # the newest entries `fleet job` and `fleet jobs` look through for a metrics line


def metric_rows(entries: list) -> list[dict]:
    """The JSON objects in metrics stream entries; a line that is not one stays only in the job's file."""
    rows = []
    for _, fields in entries:
        try:
            row = json.loads(fields.get(b"line", b"{}"))
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _lines(entries: list) -> list[tuple[str, str]]:
    """(entry id, line) of log stream entries; a line that is not UTF-8 is shown with U+FFFD."""
    return [(entry_id.decode(), fields.get(b"line", b"").decode("utf-8", errors="replace"))
            for entry_id, fields in entries]


class Streams:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    def metrics(self, job_id: str, attempt: int) -> list[dict]:
        """Every metrics line of an attempt, oldest first."""
        return metric_rows(self.redis.xrange(self.keys.metrics(job_id, attempt)))

    def metrics_of_many(self, attempts: list[tuple[str, int]]) -> list[list[dict]]:
        """Every metrics line of each (job id, attempt), in one round trip: `fleet compare`'s curves."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id, attempt in attempts:
            pipe.xrange(self.keys.metrics(job_id, attempt))
        return [metric_rows(entries) if isinstance(entries, list) else []
                for entries in (pipe.execute(raise_on_error=False) if attempts else [])]

    def log(self, job_id: str, attempt: int) -> list[tuple[str, str]]:
        """The attempt's output so far as (entry id, line), oldest first."""
        return _lines(self.redis.xrange(self.keys.log(job_id, attempt)))

    def has_log(self, job_id: str, attempt: int) -> bool:
        """Whether any output of the attempt reached Redis."""
        return bool(self.redis.exists(self.keys.log(job_id, attempt)))

    def follow_log(self, job_id: str, attempt: int, after: str, block_ms: int, count: int) -> list[tuple[str, str]]:
        """Up to ``count`` lines after entry ``after``, waiting up to ``block_ms`` for the first ([] if none came)."""
        reply = self.redis.xread({self.keys.log(job_id, attempt): after}, block=block_ms, count=count)
        return [line for _, entries in reply or [] for line in _lines(entries)]


def compact_attempt(redis, keys: Keys, job_id: str, attempt: int) -> int:
    """Once an attempt has ended: its log and metrics streams, and rq's result stream of the job,
    laid out at their exact size (compact.lua: ~4.7 KB each for a few entries, ~0.7 KB after)."""
    return int(Scripts(redis, ("compact",)).compact(
        keys=[keys.log(job_id, attempt), keys.metrics(job_id, attempt), keys.rq_results(job_id)]))


# How long an attempt's log and metrics streams stay after their last line (the files stay for good).
STREAM_TTL_S = 30 * 86400


def queue_append(pipe, key: str, lines: list[str], maxlen: int) -> None:
    """Add ``lines`` to the stream ``key`` on ``pipe``, capped near ``maxlen`` entries (a
    chatty job cannot fill Redis), its expiry pushed back: the work horse sends every file's
    new lines in one round trip."""
    for line in lines:
        pipe.xadd(key, {"line": line}, maxlen=maxlen, approximate=True)
    pipe.expire(key, STREAM_TTL_S)
