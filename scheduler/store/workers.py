"""The worker registry as ``fleet status`` and ``fleet explain`` read it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..errors import StoreError
from ..keys import Keys
from ..resources import HostResources

REGISTRY_WINDOW_S = 86400  # dead workers stay listed (as dead) for a day


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: HostResources
    state: str  # idle | busy | draining | paused (cannot claim: see note) | stopped | dead (heartbeat too old)
    simulated: bool
    job_id: str | None
    heartbeat: float
    lease_s: float
    note: str = ""  # why a paused worker claims nothing, in words an operator can act on

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
    """The workers from the replies of :func:`queue_workers`; a record gone meanwhile is left out."""
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
        state = data.get("state", "idle")
        if state != "stopped" and now - heartbeat > lease_s:
            state = "dead"
        out.append(WorkerInfo(name, host, state, data.get("simulated") == "1", data.get("job_id") or None,
                              heartbeat, lease_s, data.get("note", "") if state == "paused" else ""))
    return out


REGISTRY_ENTRY_TTL_S = 86400  # a worker that stops publishing leaves the registry a day later


def queue_publish(pipe, keys: Keys, name: str, fields: dict, now: float) -> None:
    """Add a worker's registry entry (its state, job, heartbeat and resources) to ``pipe``: a
    worker publishes inside the pipelines its dispatch already makes, never in a round trip
    of its own."""
    pipe.hset(keys.worker(name), mapping={**fields, "heartbeat": repr(now)})
    pipe.expire(keys.worker(name), REGISTRY_ENTRY_TTL_S)
    pipe.zadd(keys.workers, {name: now})


def queue_drain_read(pipe, keys: Keys, name: str) -> None:
    """Add the read of whether `fleet drain` asked worker ``name`` to claim no more; its reply
    is b"1" when it did."""
    pipe.hget(keys.worker(name), "drain")


def last_heartbeat(redis, keys: Keys, name: str) -> tuple[float | None, float]:
    """When worker ``name`` last heartbeated (None: never, or its entry expired) and its lease."""
    beat, lease = redis.hmget(keys.worker(name), "heartbeat", "lease_s")
    return (float(beat) if beat is not None else None), float(lease or 30)
