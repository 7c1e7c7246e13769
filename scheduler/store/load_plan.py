"""A load's plan, read in short steps: what changes, and whether it may be written.

Phase 1 of a load (scheduler/store/loading.py) used to run inside the load's one Lua script,
holding Redis for seconds at 50,000 jobs. It reads here instead, READ_BATCH jobs or keys per
call of the read-only load_read.lua (a few milliseconds of Redis time each; as pipelined
commands the client spent ~0.1 ms on each), while the load lock keeps every other load out
(only loads change what a plan compares: a job's scheduling digest, rank and
``in_manifest``). Claims and finishes may still change jobs' states meanwhile; the apply
steps read each job's state again when they write it (load_step.lua).

Every foreign value (a key fleet did not write) and corrupt record a load would meet is
found here, before the first write, as the one-script load found them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from ..keys import Keys
from ..states import JobState
from .errors import REFUSAL_PREFIX
from .scripts import Scripts

READ_BATCH = 250  # jobs or keys per load_read.lua call: ~5-15 ms of Redis time each
JOB_FIELDS = ("sched", "state", "class", "priority", "seq", "in_manifest", "name", "indexed", "rank")
KNOWN_STATES = {s.value for s in JobState}


class LoadRefused(Exception):
    """A foreign value or corrupt record the load met before writing anything; its text is the
    refusal as the scripts word it (scheduler/store/errors.py damage_message)."""


@dataclass
class Diff:
    """What a load would change: job actions in manifest order (adds, updates, revives), then
    orphans; and the small tables."""

    actions: list[tuple[str, dict]] = field(default_factory=list)  # (kind, job payload or {"id"})
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    host_writes: dict[str, str] = field(default_factory=dict)
    host_deletes: list[str] = field(default_factory=list)
    class_writes: dict[str, str] = field(default_factory=dict)
    name_writes: dict[str, str] = field(default_factory=dict)
    meta_changed: bool = False
    listed: int = 0  # how many jobs in_manifest held before the load
    rows: dict[str, dict] = field(default_factory=dict)  # job id -> what load_read.lua read of it

    @property
    def changed(self) -> bool:
        return bool(self.actions or self.host_writes or self.host_deletes or self.class_writes
                    or self.name_writes or self.meta_changed)


def stored_fields(row: dict) -> dict[str, str | None]:
    """A load_read.lua row's job fields by name (JOB_FIELDS; all None for a job not stored)."""
    return dict(zip(JOB_FIELDS, row.get("f") or [None] * len(JOB_FIELDS)))


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _foreign(key: str, found: str, want: str) -> str | None:
    """As types.lua's foreign(): None, or the refusal naming the key."""
    if found not in ("none", want):
        return f"{REFUSAL_PREFIX}key {key} holds a {found}, not fleet's {want}"
    return None


def _batches(items: list, size: int = READ_BATCH):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _no_tick() -> None:
    pass


def _reader(redis):
    return Scripts(redis, ("load_read",)).load_read


def read_types(redis, keys: Keys, wanted: list[str], tick: Callable[[], None] = _no_tick) -> list[str]:
    """The type of each key of ``wanted``, in order, READ_BATCH keys per call."""
    script, found = _reader(redis), []
    for batch in _batches(wanted):
        tick()
        found += json.loads(script(keys=[keys.jobs], args=["types", json.dumps({"keys": batch})]))
    return found


def check_types(redis, keys: Keys, wanted: dict[str, str], tick: Callable[[], None] = _no_tick) -> None:
    """Raise LoadRefused for the first key of ``wanted`` (key -> type) holding another type."""
    names = list(wanted)
    for key, found in zip(names, read_types(redis, keys, names, tick)):
        bad = _foreign(key, found, wanted[key])
        if bad:
            raise LoadRefused(bad)


def read_jobs(redis, keys: Keys, ids: list[str], tick: Callable[[], None] = _no_tick) -> dict[str, dict]:
    """load_read.lua's row for each job id: its key's type, fields, deps and rq record."""
    script, rows = _reader(redis), {}
    prefixes = {"job_prefix": keys.job_prefix, "deps_prefix": keys.deps_prefix, "rq_job_prefix": keys.rq_job_prefix}
    for batch in _batches(ids):
        tick()
        replies = json.loads(script(keys=[keys.jobs], args=["jobs", json.dumps({**prefixes, "ids": batch})]))
        for job_id, row in zip(batch, replies):
            row["m"] = row.get("m") or []  # cjson writes an empty list as {}
            rows[job_id] = row
    return rows


def plan_diff(redis, keys: Keys, payload: dict, tick: Callable[[], None] | None = None) -> Diff:
    """The diff between the store and ``payload`` (loading.build_payload), read in batches;
    ``tick`` runs before each (the load lock's renewal)."""
    tick = tick or _no_tick
    check_types(redis, keys, {keys.jobs: "zset", keys.names: "hash", keys.in_manifest: "set",
                              keys.orphaned: "zset", keys.seq: "string", keys.classes: "hash", keys.hosts: "hash",
                              keys.manifest_meta: "hash", keys.events: "stream", keys.jobs_by_id: "zset"})
    diff = Diff()
    jobs = payload["jobs"]
    diff.rows = read_jobs(redis, keys, [j["id"] for j in jobs], tick)
    for j in jobs:
        row, key = diff.rows[j["id"]], keys.job(j["id"])
        if row["t"] not in ("none", "hash"):
            raise LoadRefused(f"key {key} holds a {row['t']}, not a fleet job record")
        if row["t"] == "none":
            diff.actions.append(("add", j))
            diff.added.append(j["id"])
            continue
        c = stored_fields(row)
        if c["state"] not in KNOWN_STATES or not _number(c["seq"]) or not _number(c["priority"]):
            raise LoadRefused(f"job record {key} is corrupt (state {c['state']}); restore it from backup or "
                              f"delete it")
        if c["in_manifest"] == "0":
            diff.actions.append(("revive", j))
            diff.revived.append(j["id"])
        elif c["sched"] != j["sched"] or c["rank"] != j["rank"]:  # no rank: stored before ranks existed
            diff.actions.append(("update", j))
            diff.updated.append(j["id"])
        else:
            diff.unchanged.append(j["id"])
    _plan_orphans(redis, keys, {j["id"] for j in jobs}, diff, tick)
    _plan_tables(redis, keys, payload, diff)
    return diff


def _number(value: str | None) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _plan_orphans(redis, keys: Keys, desired: set[str], diff: Diff, tick: Callable[[], None]) -> None:
    listed: set[str] = set()
    cursor = 0
    while True:
        cursor, members = redis.sscan(keys.in_manifest, cursor, count=READ_BATCH)
        listed.update(_text(m) for m in members)
        if int(cursor) == 0:
            break
    diff.listed = len(listed)
    gone = sorted(i for i in listed if i not in desired)
    rows = read_jobs(redis, keys, gone, tick)
    for job_id in gone:
        found = rows[job_id]["t"]
        if found not in ("hash", "none"):
            raise LoadRefused(f"key {keys.job(job_id)} holds a {found}, not a fleet job record (its id is in "
                              f"{keys.in_manifest})")
        diff.rows[job_id] = rows[job_id]
        diff.actions.append(("orphan", {"id": job_id}))
        diff.orphaned.append(job_id)


def _plan_tables(redis, keys: Keys, payload: dict, diff: Diff) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.hosts)
    pipe.hkeys(keys.classes)
    pipe.hlen(keys.names)
    pipe.hmget(keys.manifest_meta, "digest", "path", "name")
    raw_hosts, class_ids, names_held, meta = pipe.execute()
    stored = {_text(k): _text(v) for k, v in raw_hosts.items()}
    diff.host_writes = {name: spec for name, spec in payload["hosts"].items() if stored.get(name) != spec}
    diff.host_deletes = sorted(name for name in stored if name not in payload["hosts"])
    known = {_text(c) for c in class_ids}
    diff.class_writes = {cid: spec for cid, spec in payload["classes"].items() if cid not in known}
    # Names gone from `names` (an operator deleted a damaged key, as fleet's errors advise) are
    # written back; looked at one by one only when the hash holds fewer names than the jobs
    # already stored (an added job's name is written with it).
    added = set(diff.added)
    stored_jobs = [j for j in payload["jobs"] if j["id"] not in added]
    if names_held < len(stored_jobs):
        for batch in _batches(stored_jobs):
            pipe = redis.pipeline(transaction=False)
            for j in batch:
                pipe.hget(keys.names, j["name"])
            for j, held in zip(batch, pipe.execute()):
                if _text(held) != j["id"]:
                    diff.name_writes[j["name"]] = j["id"]
    m = payload["manifest"]
    diff.meta_changed = [_text(v) for v in meta] != [m["digest"], m["path"], m["name"]]


def check_write_targets(redis, keys: Keys, payload: dict, diff: Diff, tick: Callable[[], None] = _no_tick) -> None:
    """Every other key the apply steps write, checked before the first write: a wrong type met
    midway would stop the load half-applied, and a foreign value at `heads` would hide every
    pending job from every claim. Most of it was read with the jobs (``diff.rows``)."""
    states = payload["states"]
    wanted: dict[str, str] = {keys.heads: "zset", keys.state(states["pending"]): "zset",
                              keys.state(states["blocked"]): "zset"}
    for kind, j in diff.actions:
        row = diff.rows[j["id"]]
        fields = stored_fields(row)
        if kind == "orphan":
            if fields["indexed"] == "1" and fields["class"]:
                wanted[keys.pending(fields["class"])] = "zset"
            continue
        bad = _foreign(keys.deps_prefix + j["id"], row["d"], "set")
        if bad:
            raise LoadRefused(bad)
        if kind == "add":
            bad = _foreign(keys.rq_job(j["id"]), row["r"], "hash")
            if bad:
                raise LoadRefused(bad)
        wanted[keys.pending(j["class"])] = "zset"
        if fields["class"]:
            wanted[keys.pending(fields["class"])] = "zset"
        for old in row["m"]:
            wanted[keys.dependents_prefix + old] = "set"
        for parent in j["parents"]:
            wanted[keys.dependents_prefix + parent] = "set"
            if parent not in diff.rows:  # a parent the manifest lists was read with the jobs
                wanted.setdefault(keys.job(parent), "hash")
    check_types(redis, keys, wanted, tick)
