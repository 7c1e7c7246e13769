"""The worker registry as ``fleet status`` and ``fleet explain`` read it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..errors import StoreError
from ..keys import Keys
from ..resources import HostResources

REGISTRY_WINDOW_S = 86400  # dead workers stay listed (as dead) for a day


DRAIN_REASON_FIELD = "drain_reason"  # what `fleet drain --reason` said, shown beside "draining"
SLOT_FIELD = "slot."  # + the slot's number: one slot's own entry in a `--slots N` worker's record


@dataclass(frozen=True)
class WorkerInfo:
    """One registered worker; a ``--slots N`` worker is one entry whose state sums up its slots."""

    name: str
    host: HostResources
    state: str  # idle | busy | draining | paused (cannot claim: see note) | stopped | dead (heartbeat too old)
    simulated: bool
    job_id: str | None  # the job it runs (with slots: the first of ``jobs``)
    heartbeat: float
    lease_s: float
    note: str = ""  # why a paused worker claims nothing, in words an operator can act on
    slots: int = 1  # attempts it runs at once (`fleet worker --slots`)
    jobs: tuple[str, ...] = ()  # every job it runs now, one per busy slot
    drain_reason: str = ""  # why `fleet drain` drains it, as the operator said

    @property
    def busy_slots(self) -> int:
        return len(self.jobs) or int(self.job_id is not None)

    @property
    def live(self) -> bool:
        """Heartbeating and not stopped: it may claim work (or is running some)."""
        return self.state not in ("dead", "stopped")

    def heartbeat_age(self, now: float) -> float:
        return max(0.0, now - self.heartbeat)

    def to_json(self, now: float) -> dict:
        """The documented ``fleet status --json`` worker shape."""
        return {
            "name": self.name, "host": self.host.hostname, "state": self.state, "simulated": self.simulated,
            "cuda": self.host.cuda,
            "gpus": [{"index": g.index, "name": g.name, "vram_total_gib": g.vram_total_gib,
                      "vram_free_gib": g.vram_free_gib} for g in self.host.gpus],
            "ram_gib": self.host.ram_total_gib, "cores": self.host.cores, "job_id": self.job_id,
            "heartbeat_age_s": round(self.heartbeat_age(now), 1), "note": self.note,
            "slots": self.slots, "busy_slots": self.busy_slots,
            "jobs": list(self.jobs) or ([self.job_id] if self.job_id else []),
            "drain_reason": self.drain_reason,
        }


def list_workers(redis, keys: Keys, now: float | None = None) -> list[WorkerInfo]:
    """Every worker seen in the last day; one whose heartbeat is older than its lease is dead."""
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    queue_registry(pipe, keys, now)
    names = worker_names(pipe.execute()[0])
    pipe = redis.pipeline(transaction=False)
    queue_workers(pipe, keys, names)
    return parse_workers(keys, names, pipe.execute(), now)


def queue_registry(pipe, keys: Keys, now: float) -> None:
    """Add the read of the names of the workers seen in the last day to ``pipe``, so a caller
    can share its round trip (`fleet status` reads it with the counters)."""
    pipe.zrangebyscore(keys.workers, now - REGISTRY_WINDOW_S, "+inf")


def worker_names(reply: list) -> list[str]:
    """The names in the reply of :func:`queue_registry`'s read."""
    return [n.decode() for n in reply]


def queue_workers(pipe, keys: Keys, names: list[str]) -> None:
    """Add the reads of the workers' records to ``pipe`` (one reply each, for :func:`parse_workers`)."""
    for name in names:
        pipe.hgetall(keys.worker(name))


def parse_workers(keys: Keys, names: list[str], replies: list, now: float) -> list[WorkerInfo]:
    """The workers from the replies of :func:`queue_workers`, by name (the registry's order is by
    heartbeat, which reshuffles `fleet status` and `fleet explain` at every beat); a record gone
    meanwhile is left out."""
    out = []
    for name, raw in zip(names, replies):
        if not raw:
            continue
        data = {k.decode(): v.decode() for k, v in raw.items()}
        try:
            host = HostResources.from_dict(json.loads(data["resources"]))
            heartbeat = float(data["heartbeat"])
            lease_s = float(data.get("lease_s", 30))
        except (KeyError, ValueError, TypeError) as err:
            raise StoreError(f"worker record {keys.worker(name)} is corrupt ({err!r}); delete it, the worker "
                             f"re-registers on its next heartbeat") from None
        slots = _slot_count(keys, name, data)
        if slots > 1:
            state, jobs, note = _sum_of_slots(keys, name, data, slots, now, lease_s)
        else:
            state, note = data.get("state", "idle"), data.get("note", "")
            jobs = tuple(filter(None, [data.get("job_id")]))
        if state != "stopped" and now - heartbeat > lease_s:
            state = "dead"
        elif data.get("drain") == "1" and state in ("idle", "busy"):
            state = "draining"  # `fleet drain` asked: it claims no more, whether or not it has seen that yet
        out.append(WorkerInfo(name, host, state, data.get("simulated") == "1", jobs[0] if jobs else None,
                              heartbeat, lease_s, note if state == "paused" else "", slots, jobs,
                              data.get(DRAIN_REASON_FIELD, "") if state == "draining" else ""))
    return sorted(out, key=lambda w: w.name)


def _slot_count(keys: Keys, name: str, data: dict) -> int:
    try:
        return max(1, int(data.get("slots", "1")))
    except ValueError:
        raise StoreError(f"worker record {keys.worker(name)} field slots is {data['slots']!r}, not a number; delete "
                         f"the record, the worker re-registers on its next heartbeat") from None


def _sum_of_slots(keys: Keys, name: str, data: dict, slots: int, now: float, lease_s: float
                  ) -> tuple[str, tuple[str, ...], str]:
    """A slotted worker's state from its slots' entries: paused if any slot is (with its note),
    else draining if any is, else idle while a slot is free, else busy; stopped once all are.
    A slot silent for longer than the lease (killed, being restarted) counts as neither."""
    states, jobs, note = [], [], ""
    for k in range(slots):
        raw = data.get(f"{SLOT_FIELD}{k}")
        if raw is None:
            continue
        try:
            entry = json.loads(raw)
            state, beat = str(entry["state"]), float(entry["heartbeat"])
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(f"worker record {keys.worker(name)} field {SLOT_FIELD}{k} is corrupt ({err!r}); delete "
                             f"the record, the worker re-registers on its next heartbeat") from None
        if state != "stopped" and now - beat > lease_s:
            continue
        states.append(state)
        if entry.get("job_id") and state in ("busy", "draining", "paused"):
            jobs.append(str(entry["job_id"]))
        if state == "paused" and not note:
            note = str(entry.get("note", ""))
    if states and all(s == "stopped" for s in states):
        return "stopped", (), ""
    for state in ("paused", "draining", "idle"):
        if state in states:
            return state, tuple(jobs), note
    return ("busy" if states else "dead"), tuple(jobs), note


def slot_entry(state: str, job_id: str, note: str, now: float, pid: int | None = None) -> str:
    """One slot's value under ``SLOT_FIELD`` + its number (parsed by :func:`parse_workers`)."""
    entry = {"state": state, "job_id": job_id, "note": note, "heartbeat": now}
    if pid is not None:
        entry["pid"] = pid
    return json.dumps(entry)


def owner_processes(redis, keys: Keys, name: str) -> tuple[str | None, set[int]]:
    """The machine (``node``) whose processes publish worker ``name``'s record and their pids
    (its own, or its supervisor's and every slot's), so a worker restarted on that machine can
    tell a dead predecessor from a live one without waiting out its lease. (None, {}) for a
    record without them (none, or written by an older fleet)."""
    data = {k.decode(): v.decode() for k, v in redis.hgetall(keys.worker(name)).items()}
    pids: set[int] = set()
    for field, value in data.items():
        try:
            if field == "pid":
                pids.add(int(value))
            elif field.startswith(SLOT_FIELD) and "pid" in (entry := json.loads(value)):
                pids.add(int(entry["pid"]))
        except (ValueError, TypeError):
            return None, set()  # a damaged record: judged by its heartbeat alone
    return data.get("node"), pids


def forget_worker(redis, keys: Keys, name: str) -> None:
    """Remove worker ``name`` from the registry now (its record, its registry and idle entries);
    the caller has checked it is not live: a live worker would re-register at its next beat."""
    pipe = redis.pipeline(transaction=True)
    pipe.delete(keys.worker(name))
    pipe.zrem(keys.workers, name)
    pipe.zrem(keys.idle, name)
    pipe.execute()


REGISTRY_ENTRY_TTL_S = 86400  # a worker that stops publishing leaves the registry a day later


def queue_publish(pipe, keys: Keys, name: str, fields: dict, now: float, idle: bool | None = None,
                  trim: bool = False) -> None:
    """Add a worker's registry entry (its state, job, heartbeat and resources) to ``pipe``: a
    worker publishes inside the pipelines its dispatch already makes, never in a round trip
    of its own. ``idle``: True says it is idle on the preference board's idle zset
    (scheduler/store/board.py), False takes it off, None leaves it (a slot going busy while
    its siblings may still be idle). ``trim``: also drop the names of workers silent for
    longer than the registry window (their records have expired), which any worker does now
    and then so that the registry never grows with restarts."""
    pipe.hset(keys.worker(name), mapping={**fields, "heartbeat": repr(now)})
    pipe.expire(keys.worker(name), REGISTRY_ENTRY_TTL_S)
    pipe.zadd(keys.workers, {name: now})
    if idle:
        pipe.zadd(keys.idle, {name: now})
    elif idle is False:
        pipe.zrem(keys.idle, name)
    if trim:
        pipe.zremrangebyscore(keys.workers, "-inf", f"({now - REGISTRY_WINDOW_S}")


def queue_drain_read(pipe, keys: Keys, name: str) -> None:
    """Add the read of whether `fleet drain` asked worker ``name`` to claim no more; its reply
    is b"1" when it did."""
    pipe.hget(keys.worker(name), "drain")


def worker_info(redis, keys: Keys, name: str, now: float | None = None) -> WorkerInfo | None:
    """Worker ``name`` as `fleet status` shows it, or None when it has no record."""
    now = time.time() if now is None else now
    found = parse_workers(keys, [name], [redis.hgetall(keys.worker(name))], now)
    return found[0] if found else None
