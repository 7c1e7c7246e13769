"""Claims, leases and the reaper: the Python side of claim.lua, finish.lua and renew.lua."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Iterable

from ..keys import Keys
from ..manifest.fields import RETRY_DELAY_CAP_S, RETRY_DELAY_DEFAULT_S, RETRY_JITTER
from ..matching import ConstraintClass, gpu_kind_mask
from ..resources import HostResources
from ..states import JobState, Outcome, script_names
from .board import IDLE_FRESH_S
from .errors import damage_message, refusal
from .loading import finish_interrupted_load
from .queries import JobQueries, decode_attempts
from .scripts import Scripts

log = logging.getLogger("fleet.claims")

DEFAULT_LEASE_S = 30.0


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    gpu_keys: tuple[str, ...] = ()  # ledger keys of the reserved GPUs, in the worker's GPU order
    gpu_positions: tuple[int, ...] = ()  # their 1-based positions in the worker's GPU list


@dataclass(frozen=True)
class Ended:
    job_id: str
    state: JobState
    outcome: Outcome


# With Sentinel, how long a claim waits for a replica to have it before its job starts (WAIT).
CONFIRM_TIMEOUT_MS = 1000


# How long after a failed or lost attempt's job is claimable again that it keeps preferring
# another host than that attempt's (claim.lua avoided): the other idle workers are woken by
# the same event and claim within a look, so this only bounds a wait that never ends.
AVOID_GRACE_S = 10.0


class Claims:
    def __init__(self, redis, keys: Keys, lease_s: float = DEFAULT_LEASE_S, confirm_on_replica: bool = False):
        """``confirm_on_replica`` (a Sentinel-monitored Redis): a granted claim is held until a
        replica has it (WAIT), so a failover right after it cannot forget it while its job
        runs: the new master would hand the same job to another worker."""
        self.redis = redis
        self.keys = keys
        self.lease_s = lease_s
        self.confirm_on_replica = confirm_on_replica
        self._unconfirmed_said = False
        self.scripts = Scripts(redis)
        self._fixed: tuple[tuple, str] = ((), "")
        self._damage_said: set[str] = set()  # damaged leases the reaper has logged
        self.retry_in: float | None = None  # after a fruitless claim: seconds until the soonest retry delay ends

    def claim(self, worker: str, host: HostResources, classes: Iterable[ConstraintClass],
              gpu_free: dict[str, float] | None = None, now: float | None = None) -> Claim | None:
        """Atomically take the best pending job of ``classes`` that fits what ``host`` has left.

        Only class ids travel; the script reads a class's needs from the store when it
        examines that class. The payload's fixed part is encoded once per worker and host:
        a claim is one round trip, and this keeps the client's share of it small.
        """
        # A class that accepts only some kinds of GPU carries which of this worker's GPUs it
        # accepts ("id/0110"): the script then needs neither names nor globs.
        wanted = [c.any_kind_id or f"{c.class_id}/{gpu_kind_mask(c, host.gpus)}" for c in classes]
        self.retry_in = None
        if not wanted:
            return None
        islands, switches = host.gpu_islands, host.gpu_switches
        gpus = [{"key": g.ledger_key, "total": g.vram_total_gib, "island": island, "switch": switch,
                 "free": (gpu_free or {}).get(g.ledger_key, g.vram_free_gib)}
                for g, island, switch in zip(host.gpus, islands, switches)]
        fixed = self._fixed_payload(worker, host)
        payload = (f'{{"now":{time.time() if now is None else now!r},"gpus":{json.dumps(gpus)},'
                   f'{fixed}}}')
        with refusal():
            raw = json.loads(self.scripts.claim(
                keys=[self.keys.running, self.keys.ledger(host.hostname), self.keys.classes],
                args=[payload, f",{','.join(wanted)},"]))
        if isinstance(raw, dict) and "fenced" in raw:
            if float(raw["fenced"] or 0) < time.time():  # its loader died midway: finish it, claim next time
                finish_interrupted_load(self.redis, self.keys)
            return None
        if not raw or not isinstance(raw, dict) or "job_id" not in raw:
            retry_in = raw.get("retry_in") if isinstance(raw, dict) else None
            self.retry_in = max(0.0, float(retry_in)) if isinstance(retry_in, (int, float)) else None
            return None
        if self.confirm_on_replica:
            self._confirm(raw["job_id"])
        keys, positions = raw.get("gpu_keys") or "", raw.get("gpu_pos") or ""
        return Claim(raw["job_id"], int(raw["attempt"]), tuple(keys.split(",")) if keys else (),
                     tuple(int(p) for p in positions.split(",")) if positions else ())

    def _confirm(self, job_id: str) -> None:
        """WAIT for one replica. Without one in time the job starts anyway (stopping every job
        while a replica is away would idle the fleet), said once: a failover now could lose this
        claim, and then the job's next lease renewal finds it gone and stops it."""
        if int(self.redis.execute_command("WAIT", 1, CONFIRM_TIMEOUT_MS)) < 1 and not self._unconfirmed_said:
            self._unconfirmed_said = True
            log.warning("claim of %s not confirmed by any replica within %d ms (is one connected to the master?); "
                        "a failover now could lose it, and its worker would then stop the job at its next lease "
                        "renewal", job_id, CONFIRM_TIMEOUT_MS)

    def _fixed_payload(self, worker: str, host: HostResources) -> str:
        """The claim payload's fields that stay the same for a worker on a host, as JSON members."""
        cache_key = (worker, host.hostname, host.ram_total_gib, host.cores, self.lease_s)
        if self._fixed[0] != cache_key:
            members = json.dumps({
                "lease_s": self.lease_s, "worker": worker, "host": host.hostname, **self.keys.script_prefixes(),
                "prefer_prefix": self.keys.prefer_prefix, "idle_key": self.keys.idle,
                "worker_prefix": self.keys.worker_prefix, "idle_fresh_s": IDLE_FRESH_S,
                **script_names(), "ram_total": host.ram_total_gib, "cores_total": host.cores})
            self._fixed = (cache_key, members[1:-1])
        return self._fixed[1]

    def _finish(self, payload: dict) -> dict:
        base = {"now": time.time(), "lease_s": self.lease_s, **self.keys.script_prefixes(), **script_names(),
                "retry_delay_s": RETRY_DELAY_DEFAULT_S, "retry_delay_cap_s": RETRY_DELAY_CAP_S,
                "retry_jitter": RETRY_JITTER, "jitter": random.random(), "avoid_grace_s": AVOID_GRACE_S}
        base.update(payload)
        with refusal():
            return json.loads(self.scripts.finish(keys=[self.keys.running, self.keys.reaper_tick, self.keys.events],
                                                  args=[json.dumps(base)]))

    def complete(self, job_id: str, attempt: int, worker: str, outcome: Outcome, exit_code: int | None = None,
                 reason: str = "", output_dir: str = "", summary: dict | None = None,
                 resumed_from: int | None = None) -> Ended | None:
        """Record how an attempt ended; None if the lease was lost meanwhile (the result is stale).

        ``summary`` (the job's result.json) is kept with the attempt and, for a finished
        one, as the job's result that `fleet compare` reads; ``resumed_from`` (the earlier
        attempt whose output dir it resumed from) with the attempt.
        """
        result = self._finish({"mode": "complete", "job_id": job_id, "attempt": attempt, "worker": worker,
                               "outcome": outcome.value, "exit_code": exit_code, "reason": reason,
                               "output_dir": output_dir, "summary": json.dumps(summary) if summary else "",
                               "result_key": self.keys.result(job_id), "resumed_from": resumed_from})
        ended = result["ended"] if isinstance(result["ended"], list) else []
        return _ended(ended[0]) if ended else None

    def reap(self, limit: int = 100, now: float | None = None, every_s: float = 1.0) -> list[Ended]:
        """Return jobs whose lease expired to pending (or failed after max_attempts), attempt recorded lost.

        ``every_s`` is how often this caller reaps: a silence of all reapers longer than two
        such ticks means Redis was out for everyone (or nothing ran), and leases are pushed
        back by it rather than reaped (finish.lua), since no worker could renew meanwhile.
        """
        payload = {"mode": "reap", "limit": limit, "every_s": every_s}
        if now is not None:
            payload["now"] = now
        result = self._finish(payload)
        for why in result.get("damaged") or []:
            if why not in self._damage_said:  # said once: the lease is met again at every tick
                self._damage_said.add(why)
                log.error("an expired lease cannot be reaped: %s", damage_message(why))
        if isinstance(result.get("grace"), (int, float)) and result["grace"] > 0 and result.get("shifted"):
            log.warning("no reaper ran for %.1fs (Redis unreachable, or no receiver or worker running): %d "
                        "lease(s) pushed back by that much instead of being reaped", result["grace"],
                        result["shifted"])
        return [_ended(e) for e in (result["ended"] if isinstance(result["ended"], list) else [])]

    def renew(self, job_id: str, worker: str, attempt: int, now: float | None = None) -> str:
        """Extend the lease: "ok", "cancel" (stop requested) or "lost" (stop the job now)."""
        deadline = (time.time() if now is None else now) + self.lease_s
        reply = self.scripts.renew(keys=[self.keys.running, self.keys.job(job_id)],
                                   args=[job_id, worker, attempt, repr(deadline), JobState.RUNNING.value])
        return reply.decode() if isinstance(reply, bytes) else reply

    def foreign_keys(self, worker: str, host: str) -> list[str]:
        """What is wrong with the keys every claim, job start and attempt end of this worker
        touch (not one job's own keys): one line per key holding a type fleet never writes
        there, in one round trip. A paused worker looks before claiming again: a claim that
        succeeded and then met the damage would have to hand its job back, once per retry."""
        expected = {self.keys.running: "zset", self.keys.heads: "zset", self.keys.classes: "hash",
                    self.keys.hosts: "hash", self.keys.names: "hash", self.keys.events: "stream",
                    self.keys.reaper_tick: "string", self.keys.workers: "zset", self.keys.worker(worker): "hash",
                    self.keys.ledger(host): "hash", **{self.keys.state(s.value): "zset" for s in JobState}}
        pipe = self.redis.pipeline(transaction=False)
        for key in expected:
            pipe.type(key)
        found = []
        for (key, want), got in zip(expected.items(), pipe.execute()):
            got = got.decode() if isinstance(got, bytes) else got
            if got not in ("none", want):
                found.append(damage_message(f"fleet: key {key} holds a {got}, not fleet's {want}"))
        return found

    def attempts(self, job_id: str) -> list[dict]:
        """The job's attempt records (:meth:`JobQueries.attempts`: one read, one place)."""
        return JobQueries(self.redis, self.keys).attempts(job_id)

    def last_finished(self, job_id: str) -> dict | None:
        """:meth:`JobQueries.last_finished`."""
        return JobQueries(self.redis, self.keys).last_finished(job_id)

    def decode_attempts(self, job_id: str, raw: list[bytes]) -> list[dict]:
        return decode_attempts(self.keys.attempts(job_id), raw)


def output_dir_of(attempt: dict) -> str | None:
    """Where an attempt's outputs are now: its archive dir once `fleet prune` moved them."""
    return attempt.get("archived_to") or attempt.get("output_dir")


def _ended(data: dict) -> Ended:
    return Ended(data["job_id"], JobState(data["state"]), Outcome(data["outcome"]))
