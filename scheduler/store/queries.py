"""Read side of the store: one job, job lists, counters, name resolution.

Counters come from per-state index sizes (ZCARD), so ``fleet status`` costs the
same number of round trips at 100 jobs as at 100,000.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from ..errors import NotFoundError, StoreError, UsageError
from ..keys import Keys
from ..states import JobState, Outcome

HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    name: str
    spec: dict[str, Any]
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    in_manifest: bool
    host: str | None
    worker: str | None
    created_at: float
    updated_at: float
    state_at: float
    class_id: str
    indexed: bool
    reason: str | None
    retry_at: float | None = None  # a failed attempt's retry delay ends then (finish.lua); may be past
    avoid_host: str | None = None  # the host its last failed or lost attempt ran on, preferred against
    avoid_until: float = 0.0  # ... until then (claim.lua avoided)

    @property
    def model(self) -> str:
        return self.spec.get("model", "")

    @property
    def mode(self) -> str | None:
        return self.spec.get("mode")

    def summary(self) -> dict[str, Any]:
        """The ``fleet jobs --json`` shape (a documented contract)."""
        return {"job_id": self.job_id, "name": self.name, "model": self.model, "mode": self.mode,
                "state": self.state.value, "priority": self.priority, "host": self.host, "worker": self.worker,
                "attempts": self.attempts}


def _decode(raw: dict) -> dict[str, str]:
    return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in raw.items()}


def parse_spec(spec_key: str, spec_json: str | bytes | None) -> dict[str, Any]:
    try:
        spec = json.loads(spec_json)["spec"]
        if not isinstance(spec, dict):
            raise TypeError("spec is not a table")
        return spec
    except (TypeError, ValueError, KeyError) as err:
        raise StoreError(f"job spec {spec_key} is corrupt ({type(err).__name__}: {err}); reload the manifest "
                         f"that defines the job, or cancel it") from None


def parse_job(key: str, fields: dict[str, str], spec_json: str | bytes | None, spec_key: str = "") -> JobRecord:
    """A job record from its hash and spec; a value fleet did not write is a StoreError naming the key."""
    spec = parse_spec(spec_key or key, spec_json)
    try:
        return JobRecord(
            job_id=fields["id"], name=fields["name"], spec=spec,
            state=JobState(fields["state"]), priority=int(fields["priority"]), attempts=int(fields["attempts"]),
            max_attempts=int(fields.get("max_attempts") or 3), in_manifest=fields.get("in_manifest") == "1",
            host=fields.get("last_host") or None, worker=fields.get("last_worker") or None,
            created_at=float(fields["created_at"]), updated_at=float(fields["updated_at"]),
            state_at=float(fields.get("state_at") or fields["updated_at"]), class_id=fields.get("class", ""),
            indexed=fields.get("indexed") == "1", reason=fields.get("reason") or None,
            retry_at=float(fields.get("retry_at") or 0) or None,
            avoid_host=fields.get("avoid_host") or None, avoid_until=float(fields.get("avoid_until") or 0),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise StoreError(f"job record {key} is corrupt ({type(err).__name__}: {err}); it was not written by this "
                         f"fleet version: inspect it with redis-cli HGETALL and delete it if foreign") from None


def json_object(key: str, raw: bytes, what: str, fix: str) -> dict:
    """``raw`` (the value at ``key``) as the JSON object fleet wrote there, or a StoreError naming
    the key and ``fix``: a value someone else wrote must be one line at the CLI, not a traceback."""
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):  # a UnicodeDecodeError is a ValueError
        value = None
    if not isinstance(value, dict):
        raise StoreError(f"{what} at {key} is not fleet's JSON; {fix}")
    return value


def decode_attempts(key: str, raw: list[bytes]) -> list[dict]:
    """A job's attempt records (the list at ``key``, as LRANGE returns it), oldest first."""
    try:
        records = [json.loads(r) for r in raw]
        if all(isinstance(r, dict) and isinstance(r.get("attempt"), int) for r in records):
            return records
    except ValueError:
        pass
    raise StoreError(f"attempt records at {key} are not fleet's JSON; inspect them "
                     f"with redis-cli LRANGE, fix or delete the key")


def _refuse_foreign(key: str, reply: Any) -> None:
    """A pipelined read's reply (``execute(raise_on_error=False)``) that is Redis's refusal, e.g.
    WRONGTYPE: the key holds something fleet did not write, and the error names it."""
    if isinstance(reply, Exception):
        raise StoreError(f"key {key} holds a value fleet did not write ({reply}); inspect it with "
                         f"redis-cli TYPE and delete it if foreign")


def _is_utf8(text: str) -> bool:
    """Whether ``text`` can be sent to Redis: argv carries bytes that are not UTF-8 as lone
    surrogates (``fleet job $'\\xff'``), which redis-py fails to encode with a traceback."""
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False


class JobQueries:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    def get(self, job_id: str) -> JobRecord:
        records = self.many([job_id])
        if not records:
            raise NotFoundError(f"no job {job_id!r}; list jobs with `fleet jobs`")
        return records[0]

    def many(self, job_ids: Iterable[str]) -> list[JobRecord]:
        """Records for the ids that exist, in order; one round trip."""
        return self.names_and_records([], list(job_ids))[1]

    def names_and_records(self, name_ids: list[str], record_ids: list[str]) -> tuple[dict[str, str], list[JobRecord]]:
        """The names of ``name_ids`` and the whole records of ``record_ids`` (those that exist),
        in one round trip. `fleet status` names a few waiting jobs of each class: reading their
        whole records (hash and spec) for that made it cost 2.1x at 100,000 jobs what it cost at 100."""
        import redis as redis_lib

        pipe = self.redis.pipeline(transaction=False)
        for job_id in name_ids:
            pipe.hget(self.keys.job(job_id), "name")
        for job_id in record_ids:
            self.queue_read(pipe, job_id)
        try:
            replies = pipe.execute(raise_on_error=False)
        except redis_lib.ResponseError as err:
            raise StoreError(f"reading jobs failed: {err}") from None
        names = {}
        for job_id, name in zip(name_ids, replies):
            _refuse_foreign(self.keys.job(job_id), name)
            if name is not None:
                names[job_id] = name.decode(errors="replace")
        rest = replies[len(name_ids):]
        records = [self.parse_read(job_id, rest[2 * i], rest[2 * i + 1]) for i, job_id in enumerate(record_ids)]
        return names, [r for r in records if r is not None]

    def names(self, job_ids: list[str]) -> dict[str, str]:
        """The names of the jobs that have a readable one, in one round trip: for saying which job a
        result is about, which must work even where a job's record is damaged."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "name")
        return {job_id: name.decode(errors="replace") for job_id, name in zip(job_ids, pipe.execute(raise_on_error=False))
                if isinstance(name, bytes)}

    def queue_read(self, pipe, job_id: str) -> None:
        """Add the two reads of one job's record to ``pipe``, so a caller can share its round
        trip (the worker reads the record it just claimed alongside rq's)."""
        pipe.hgetall(self.keys.job(job_id))
        pipe.get(self.keys.spec(job_id))

    def parse_read(self, job_id: str, raw: Any, spec: Any) -> JobRecord | None:
        """The record from the two replies of :meth:`queue_read` (as ``execute(raise_on_error=False)``
        returns them); None if the job does not exist."""
        _refuse_foreign(self.keys.job(job_id), raw)
        _refuse_foreign(self.keys.spec(job_id), spec)
        if not raw:
            return None
        return parse_job(self.keys.job(job_id), _decode(raw), spec, self.keys.spec(job_id))

    def attempts(self, job_id: str) -> list[dict]:
        """The job's attempt records, oldest first (what finish.lua and the claim wrote)."""
        return decode_attempts(self.keys.attempts(job_id), self.redis.lrange(self.keys.attempts(job_id), 0, -1))

    def resolve_attempt(self, ref: str, attempt: int | None) -> tuple[JobRecord, int]:
        """The job ``ref`` names and the number of one of its attempts (default: the latest),
        or NotFoundError saying why there is none."""
        record = self.get(self.resolve(ref))
        number = attempt or record.attempts
        if number < 1:
            raise NotFoundError(f"{record.name} has not started yet; `fleet explain {record.name}` says why")
        if number > record.attempts:
            raise NotFoundError(f"{record.name} has {record.attempts} attempt(s), not {number}")
        return record, number

    def forks_of(self, job_id: str) -> list[str]:
        """The names of the jobs forked from this one (``forked_from``; load_step.lua links them)."""
        ids = sorted(m.decode() for m in self.redis.smembers(self.keys.forks(job_id)))
        names = self.names(ids)
        return [names[i] for i in ids if i in names]

    def manifest_path(self) -> str | None:
        """Where the manifest last applied was read from (on the machine that loaded it)."""
        path = self.redis.hget(self.keys.manifest_meta, "path")
        return path.decode(errors="replace") if path else None

    def id_of_name(self, name: str) -> str | None:
        """The id of the job named ``name`` exactly (no prefixes, no ids), or None."""
        found = self.redis.hget(self.keys.names, name)
        return found.decode() if found is not None else None

    def last_finished(self, job_id: str) -> dict | None:
        """The job's latest attempt that finished (its outputs are the job's result), or None."""
        finished = [a for a in self.attempts(job_id) if a.get("outcome") == Outcome.FINISHED.value]
        return finished[-1] if finished else None

    def identity(self, job_id: str) -> dict[str, Any]:
        """The fields hashed into the job's id, as the load recorded them ({} if none)."""
        key = self.keys.spec(job_id)
        raw = self.redis.get(key)
        if not raw:
            return {}
        identity = json_object(key, raw, "the job's spec", "reload the manifest to rewrite it").get("identity")
        if not isinstance(identity, dict):
            raise StoreError(f"the job's spec at {key} has no identity table; reload the manifest to rewrite it")
        return identity

    def result(self, job_id: str) -> dict | None:
        """The job's result (its finished attempt's result.json), or None."""
        return self.results([job_id])[0]

    def results(self, job_ids: list[str]) -> list[dict | None]:
        """The results of ``job_ids`` (None where there is none), in one round trip: `fleet compare`."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.get(self.keys.result(job_id))
        return [json_object(self.keys.result(job_id), raw, "the job's result", "delete it (redis-cli DEL): the next "
                            "finished attempt writes it anew") if raw else None
                for job_id, raw in zip(job_ids, pipe.execute())]

    def artifacts(self, job_id: str, attempt: int) -> dict | None:
        """The artifact manifest (sha256 of every output file) recorded when the attempt ended, or None."""
        key = self.keys.artifacts(job_id, attempt)
        raw = self.redis.get(key)
        return None if raw is None else json_object(key, raw, "the artifact manifest", "delete it (redis-cli DEL); "
                                                    "`fleet verify` then says the attempt has none")

    def all_ids(self) -> list[str]:
        """Every job's id, in load order: `fleet compare --all` (an admin read, O(jobs))."""
        return [m.decode() for m in self.redis.zrange(self.keys.jobs, 0, -1)]

    def resolve(self, ref: str) -> str:
        """A job id from a full id, a name or a unique id prefix (at least 4 hex digits).

        An existing job's exact id wins over a name: an id is what scripts and other commands
        print, and a job named like another's id (which stores loaded by older fleets may
        hold) must not turn `fleet cancel <id>` against the job it names."""
        if not ref:
            raise UsageError("empty job reference; give a job name, job_id or job_id prefix")
        if not ref.isascii() and not _is_utf8(ref):
            raise UsageError(f"job reference {ascii(ref)} is not valid UTF-8, and job names are UTF-8 text; "
                             f"check the encoding of the shell or script that passed it")
        if len(ref) == 16 and set(ref) <= HEX and self.redis.exists(self.keys.job(ref)):
            return ref
        by_name = self.redis.hget(self.keys.names, ref)
        if by_name:
            return by_name.decode()
        if set(ref) <= HEX:
            if len(ref) >= 4:
                matches = [m.decode() for m in self.redis.zrangebylex(self.keys.jobs_by_id, f"[{ref}",
                                                                       f"[{ref}\xff")]
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    shown = ", ".join(matches[:10]) + (" ..." if len(matches) > 10 else "")
                    raise UsageError(f"job_id prefix {ref!r} is ambiguous: {shown}; type more digits")
            else:
                raise NotFoundError(f"no job named {ref!r}, and a job_id prefix needs at least 4 hex digits; "
                                    f"list jobs with `fleet jobs`")
        raise NotFoundError(f"no job named {ref!r} and no job_id starting with it; list jobs with `fleet jobs`")

    def counts(self) -> dict[str, int]:
        """Jobs per state plus ``orphaned``, in one round trip whatever the store's size."""
        pipe = self.redis.pipeline(transaction=False)
        for state in JobState:
            pipe.zcard(self.keys.state(state.value))
        pipe.zcard(self.keys.orphaned)
        values = pipe.execute()
        counts = {state.value: int(n) for state, n in zip(JobState, values)}
        counts["orphaned"] = int(values[-1])
        return counts

    def ids_in_states(self, states: Iterable[str] = (), page: int = 500) -> Iterator[str]:
        """Every job id in any of ``states`` (values of JobState, or "orphaned"), newest activity
        first, each once, read a page at a time from each state's index and merged by the time
        the job entered it; with no states, every job, newest loaded first."""
        indexes = [self.keys.orphaned if s == "orphaned" else self.keys.state(s) for s in states] or [self.keys.jobs]
        seen: set[str] = set()
        for _, job_id in heapq.merge(*(self._index_pages(key, page) for key in indexes)):
            if job_id not in seen:
                seen.add(job_id)
                yield job_id

    def _index_pages(self, key: str, page: int) -> Iterator[tuple[float, str]]:
        """(-score, id) of a zset from its highest score down, one ZREVRANGE of ``page`` at a time."""
        start = 0
        while True:
            raw = self.redis.zrevrange(key, start, start + page - 1, withscores=True)
            for member, score in raw:
                yield -score, member.decode()
            if len(raw) < page:
                return
            start += page

    def list_ids(self, state: JobState | None = None, offset: int = 0, limit: int = 100) -> list[str]:
        """Newest activity first: by time entered the state, or load order across all states."""
        if state is not None:
            raw = self.redis.zrevrange(self.keys.state(state.value), offset, offset + limit - 1)
        else:
            raw = self.redis.zrevrange(self.keys.jobs, offset, offset + limit - 1)
        return [r.decode() for r in raw]
