"""Which workers fleet takes out of rq's worker registry (store/rq_bridge.py clear_dead_rq_workers):
only those fleet knows are dead, never one starting up or restarted under its name."""

from __future__ import annotations

from datetime import datetime, timezone

from scheduler.store.rq_bridge import clear_dead_rq_workers

NOW = 1_800_000_000.0


def rq_worker(redis, keys, name: str, born: float, death: bool = False) -> None:
    key = keys.rq_worker_prefix + name
    redis.sadd(keys.rq_workers, key)
    redis.sadd(keys.rq_workers_of_queue, key)
    fields = {"birth": datetime.fromtimestamp(born, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if death:
        fields["death"] = "2026-12-03T00:00:00.000000Z"
    redis.hset(key, mapping=fields)


def fleet_record(redis, keys, name: str, heartbeat: float, lease_s: float = 30) -> None:
    redis.hset(keys.worker(name), mapping={"heartbeat": repr(heartbeat), "lease_s": lease_s})


def test_only_workers_fleet_knows_are_dead_leave_rqs_registry(store):
    r, keys = store.redis, store.keys
    rq_worker(r, keys, "killed", NOW - 600)
    fleet_record(r, keys, "killed", NOW - 120)  # silent for 4 leases: SIGKILLed
    rq_worker(r, keys, "slotted:1", NOW - 600)
    fleet_record(r, keys, "slotted", NOW - 120)  # a --slots worker's slot: its fleet record is the worker's
    rq_worker(r, keys, "alive", NOW - 600)
    fleet_record(r, keys, "alive", NOW - 5)
    rq_worker(r, keys, "starting", NOW - 1)  # registered with rq, not yet published to fleet
    rq_worker(r, keys, "reborn", NOW - 1)
    fleet_record(r, keys, "reborn", NOW - 120)  # its dead predecessor's record, not yet rewritten
    rq_worker(r, keys, "stopped", NOW - 600, death=True)
    fleet_record(r, keys, "stopped", NOW - 120)  # a clean stop: rq's own business
    assert sorted(clear_dead_rq_workers(r, keys, NOW)) == ["killed", "slotted:1"]
    left = {m.decode()[len(keys.rq_worker_prefix):] for m in r.smembers(keys.rq_workers)}
    assert left == {"alive", "starting", "reborn", "stopped"}
    assert not r.exists(keys.rq_worker_prefix + "killed") and not r.sismember(keys.rq_workers_of_queue,
                                                                                keys.rq_worker_prefix + "killed")
