"""The claim side of a worker: which classes this host may run, and waiting for work.

The static part of matching (host allow/deny, job host lists, CUDA) is decided here
per constraint class with the pure rule; the dynamic part (what the host has left
right now) is decided atomically by claim.lua. Idle workers block on the events
stream instead of polling, so new work starts within a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from scheduler.errors import StoreError
from scheduler.keys import Keys
from scheduler.manifest.model import HostSpec
from scheduler.matching import ConstraintClass, static_reason
from scheduler.resources import HostResources
from scheduler.store.claims import Claim, Claims
from scheduler.store.workers import list_workers

from .preference import Deferrals

log = logging.getLogger("fleet.worker")
REAP_EVERY_S = 1.0
# The registry only steers soft preferences, which tolerate being this stale; re-reading it
# on every claim attempt would cost every worker a read of every other worker.
REGISTRY_MAX_AGE_S = 0.25


class ClaimLoop:
    def __init__(self, redis, keys: Keys, claims: Claims, worker_name: str,
                 host: Callable[[], HostResources]):
        self.redis = redis
        self.keys = keys
        self.claims = claims
        self.worker_name = worker_name
        self.host = host  # re-probed per claim where the probe is live (free VRAM changes)
        self._classes_seen: dict[str, ConstraintClass] = {}
        self._damaged: dict = {}  # damaged record -> its value, said once
        self._last_event = "$"
        self.deferrals = Deferrals()
        self.next_due: float | None = None  # seconds until a deferred class should be retried
        self._last_reap = 0.0
        self._registry: tuple[float, list] = (-1.0, [])

    def host_specs(self, raw: dict, own: str) -> dict[str, HostSpec]:
        """The ``hosts`` hash (as HGETALL returns it) as specs. A damaged entry of another host
        is left out (said once); this worker's own cannot be: its allow/deny rules decide what
        it may run, so claiming stops (StoreError) until a reload rewrites it."""
        specs = {}
        for name, record in raw.items():
            try:
                specs[name.decode()] = HostSpec.from_dict(json.loads(record))
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                where = f"{self.keys.hosts}[{name.decode(errors='replace')}]"
                if name.decode(errors="replace") == own:
                    raise StoreError(f"host record {where} is not fleet's JSON ({err!r}); reload the manifest "
                                     f"to rewrite it") from None
                if self._damaged.get((self.keys.hosts, name)) != record:
                    self._damaged[(self.keys.hosts, name)] = record
                    log.error("host record %s is not fleet's JSON (%r); ignored: reload the manifest to rewrite it",
                              where, err)
        return specs

    def eligible_classes(self, host: HostResources, hosts: dict[str, HostSpec], raw: dict) -> list[ConstraintClass]:
        """Classes of the ``classes`` hash whose static constraints admit this host (resources
        are the script's business)."""
        known = host.hostname in hosts
        out = []
        for class_id, record in raw.items():
            cls = self._classes_seen.get(class_id.decode())
            if cls is None:
                try:
                    cls = ConstraintClass.from_dict(json.loads(record))
                except (ValueError, TypeError, KeyError, AttributeError) as err:
                    # Its jobs wait; every other class keeps running. Said once per damaged record.
                    if self._damaged.get(class_id) != record:
                        self._damaged[class_id] = record
                        log.error("class record %s[%s] is not fleet's JSON (%r); its jobs stay pending: "
                                  "delete that field and reload the manifest", self.keys.classes,
                                  class_id.decode(), err)
                    continue
                self._classes_seen[class_id.decode()] = cls
            if static_reason(cls, host, bool(known)) is None:
                out.append(cls)
        return out

    def mark(self) -> None:
        """Remember the events stream's end *before* a claim attempt, so an event that
        arrives between a fruitless claim and the wait still wakes the wait."""
        self._set_mark(self.redis.xrevrange(self.keys.events, count=1))

    def _set_mark(self, last: list) -> None:
        self._last_event = last[0][0].decode() if last else "0-0"

    def try_claim(self) -> Claim | None:
        """Claim the best job this host can run now, marking the events stream first (see
        :meth:`mark`). The mark, the hosts and the classes are read in one round trip: as
        three, they were ~0.7 ms of every job's dispatch."""
        host = self.host()
        now = time.monotonic()
        if now - self._last_reap >= REAP_EVERY_S:  # opportunistic: any live worker recovers a dead one's jobs
            self._last_reap = now
            self.claims.reap(every_s=REAP_EVERY_S)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrevrange(self.keys.events, count=1)
        pipe.hgetall(self.keys.hosts)
        pipe.hgetall(self.keys.classes)
        last, raw_hosts, raw_classes = pipe.execute()
        self._set_mark(last)
        hosts = self.host_specs(raw_hosts, host.hostname)
        classes = self.eligible_classes(host, hosts, raw_classes)
        self.next_due = None
        if classes:
            classes, self.next_due = self.deferrals.filter(classes, host, self.worker_name, self._workers(), hosts)
        return self.claims.claim(self.worker_name, host, classes)

    def _workers(self) -> list:
        fetched_at, workers = self._registry
        now = time.monotonic()
        if now - fetched_at > REGISTRY_MAX_AGE_S:
            workers = list_workers(self.redis, self.keys)
            self._registry = (now, workers)
        return workers

    def wait_for_work(self, timeout_s: float) -> bool:
        """Block until something may have become claimable (or the timeout); True if woken by an event."""
        if self._last_event == "$":
            self.mark()
        reply = self.redis.xread({self.keys.events: self._last_event}, count=100,
                                 block=max(1, int(timeout_s * 1000)))
        if not reply:
            return False
        self._last_event = reply[0][1][-1][0].decode()
        return True
