"""An attempt's output and metrics as they reached Redis: the streams the horse writes
(worker/output_stream.py) and ``fleet logs``, ``fleet metrics`` and ``fleet job`` read.

While an attempt runs its lines are a stream each (``fleet logs -f`` follows it); once it
has ended compact.lua freezes each into a string of ``<entry id>\t<line>\n`` (a third of
the memory or less, for a few lines). Every reader here reads both, the text first: a line that came after the
freeze is in a new stream, after the text's."""

from __future__ import annotations

import json

from ..keys import Keys
from .scripts import Scripts

LATEST_METRICS_WINDOW = 20  # the newest entries `fleet job` and `fleet jobs` look through for a metrics line
LATEST_METRICS_BYTES = 4096  # of a frozen metrics text, the tail read for them (~20 lines of a lab's metrics)


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


def text_entries(text: object, cut: bool = False) -> list:
    """A frozen stream's entries in XRANGE's shape, [(entry id, {b"line": line})], oldest first;
    [] for no text. ``cut``: ``text`` is a tail read with GETRANGE, whose first line may be
    partial and is dropped."""
    if not isinstance(text, bytes) or not text:
        return []
    rows = text.split(b"\n")
    if cut:
        rows = rows[1:]
    entries = []
    for row in rows:
        entry_id, tab, line = row.partition(b"\t")
        if tab:
            entries.append((entry_id, {b"line": line}))
    return entries


def _id_after(entry_id: bytes, after: str) -> bool:
    """Whether stream entry id ``entry_id`` ("ms-seq") comes after ``after``."""
    def parts(value: str) -> tuple[int, int]:
        ms, _, seq = value.partition("-")
        return int(ms or 0), int(seq or 0)
    try:
        return parts(entry_id.decode()) > parts(after)
    except ValueError:
        return True


class Streams:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    def _read(self, pairs: list[tuple[str, str]], tolerant: bool = False) -> list:
        """Each (text key, stream key)'s entries, the frozen text's then the stream's, in one
        round trip. A key holding what fleet did not write raises Redis's refusal (the CLI names
        the key), or reads as no entries where ``tolerant``."""
        pipe = self.redis.pipeline(transaction=False)
        for text, stream in pairs:
            pipe.get(text)
            pipe.xrange(stream)
        replies = pipe.execute(raise_on_error=not tolerant) if pairs else []
        return [text_entries(replies[2 * i]) + (replies[2 * i + 1] if isinstance(replies[2 * i + 1], list) else [])
                for i in range(len(pairs))]

    def _metrics_keys(self, job_id: str, attempt: int) -> tuple[str, str]:
        return self.keys.metrics_text(job_id, attempt), self.keys.metrics(job_id, attempt)

    def _log_keys(self, job_id: str, attempt: int) -> tuple[str, str]:
        return self.keys.log_text(job_id, attempt), self.keys.log(job_id, attempt)

    def metrics(self, job_id: str, attempt: int) -> list[dict]:
        """Every metrics line of an attempt, oldest first."""
        return metric_rows(self._read([self._metrics_keys(job_id, attempt)])[0])

    def metrics_of_many(self, attempts: list[tuple[str, int]]) -> list[list[dict]]:
        """Every metrics line of each (job id, attempt), in one round trip: `fleet compare`'s curves."""
        pairs = [self._metrics_keys(job_id, attempt) for job_id, attempt in attempts]
        return [metric_rows(entries) for entries in self._read(pairs, tolerant=True)]

    def log(self, job_id: str, attempt: int) -> list[tuple[str, str]]:
        """The attempt's output so far as (entry id, line), oldest first."""
        return _lines(self._read([self._log_keys(job_id, attempt)])[0])

    def has_log(self, job_id: str, attempt: int) -> bool:
        """Whether any output of the attempt reached Redis."""
        return bool(self.redis.exists(*self._log_keys(job_id, attempt)))

    def follow_log(self, job_id: str, attempt: int, after: str, block_ms: int, count: int) -> list[tuple[str, str]]:
        """Up to ``count`` lines after entry ``after``, waiting up to ``block_ms`` for the first ([] if none came).
        When none came the frozen text is read too: lines written just before the attempt
        ended may have been frozen between the follower's last read and this one."""
        text_key, stream_key = self._log_keys(job_id, attempt)
        reply = self.redis.xread({stream_key: after}, block=block_ms, count=count)
        lines = [line for _, entries in reply or [] for line in _lines(entries)]
        if lines:
            return lines
        return _lines([e for e in text_entries(self.redis.get(text_key)) if _id_after(e[0], after)][:count])


# The longest stream compact.lua freezes into a string: where the structure is most of the
# bytes; a longer one is only rewritten at its size (freezing a capped 10,000-line log held
# Redis 44 ms and saved nothing: its lines outweigh the structure).
FREEZE_MAX_ENTRIES = 500


def compact_attempt(redis, keys: Keys, job_id: str, attempt: int) -> int:
    """Once an attempt has ended: its log and metrics streams frozen into strings (up to
    FREEZE_MAX_ENTRIES lines), and the rest, with rq's result stream of the job, laid out at their
    exact size (compact.lua: a stream of a few entries takes ~4.7 KB as written, ~0.8 KB
    rewritten, ~0.2 KB frozen)."""
    return int(Scripts(redis, ("compact",)).compact(
        keys=[keys.log(job_id, attempt), keys.log_text(job_id, attempt), keys.metrics(job_id, attempt),
              keys.metrics_text(job_id, attempt), keys.rq_results(job_id)], args=[FREEZE_MAX_ENTRIES]))


# How long an attempt's log and metrics streams stay after their last line (the files stay for good).
STREAM_TTL_S = 30 * 86400


def queue_append(pipe, key: str, lines: list[str], maxlen: int) -> None:
    """Add ``lines`` to the stream ``key`` on ``pipe``, capped near ``maxlen`` entries (a
    chatty job cannot fill Redis), its expiry pushed back: the work horse sends every file's
    new lines in one round trip."""
    for line in lines:
        pipe.xadd(key, {"line": line}, maxlen=maxlen, approximate=True)
    pipe.expire(key, STREAM_TTL_S)
