"""The claim side of a worker: which classes this host may run, and waiting for work.

The static part of matching (host allow/deny, job host lists, CUDA) is decided here
per constraint class with the pure rule; the dynamic part (what the host has left
right now) is decided atomically by claim.lua. Idle workers block on the events
stream instead of polling, so new work starts within a fraction of a second.
"""

from __future__ import annotations

import time
from typing import Callable

from scheduler.manifest.model import HostSpec
from scheduler.matching import ConstraintClass, static_reason
from scheduler.resources import HostResources
from scheduler.store import Store
from scheduler.store.board import PreferenceBoard
from scheduler.store.claims import Claim, Claims

from .preference import Deferrals, placement_rank

REAP_EVERY_S = 1.0


class Claimer:
    """What a worker claims: the classes its host may run (the static rule), which of them to
    leave to a better-placed idle worker, the atomic claim, and the wait for new work."""

    def __init__(self, store: Store, claims: Claims, worker_name: str, host: Callable[[], HostResources],
                 look_every_s: float = REAP_EVERY_S):
        """``look_every_s``: the longest an idle worker goes between claim attempts
        (worker/rq_worker.py idle_look_s), which is also how often it reaps at worst."""
        self.store = store  # its catalog says each damaged host or class record once
        self.keys = store.keys
        self.claims = claims
        self.worker_name = worker_name
        self.host = host  # re-probed per claim where the probe is live (free VRAM changes)
        self.events = self.store.event_waiter()
        self.deferrals = Deferrals()
        self.board = PreferenceBoard(store.redis, store.keys, worker_name)
        self.next_due: float | None = None  # seconds until a deferred class or a retry delay is due
        self._last_reap = 0.0
        self.look_every_s = look_every_s
        self._reoffer = False  # a claim succeeded: readers may have dropped this worker's offers since

    def eligible_classes(self, host: HostResources, hosts: dict[str, HostSpec],
                         classes: dict[str, ConstraintClass]) -> list[ConstraintClass]:
        """The classes whose static constraints admit this host (resources are the script's
        business); the store has already left out the damaged ones."""
        known = host.hostname in hosts
        return [cls for cls in classes.values() if static_reason(cls, host, bool(known)) is None]

    def mark(self) -> None:
        """Remember the events stream's end *before* a claim attempt, so an event that
        arrives between a fruitless claim and the wait still wakes the wait."""
        self.events.mark()

    def try_claim(self) -> Claim | None:
        """Claim the best job this host can run now, marking the events stream first (see
        :meth:`mark`): the mark, the hosts and the classes are one round trip
        (:meth:`Store.claim_view`)."""
        host = self.host()
        now = time.monotonic()
        if now - self._last_reap >= REAP_EVERY_S:  # opportunistic: any live worker recovers a dead one's jobs
            self._last_reap = now
            self.claims.reap(every_s=max(REAP_EVERY_S, self.look_every_s))
        hosts, all_classes = self.store.claim_view(host.hostname, self.events)
        classes = self.eligible_classes(host, hosts, all_classes)
        self.next_due = None
        if classes:
            ranks = {cls.class_id: rank for cls in classes
                     if (rank := placement_rank(cls, host, hosts)) is not None}
            answer = self.board.ask(ranks, reoffer=self._reoffer)
            self._reoffer = False
            classes, self.next_due = self.deferrals.filter(classes, answer.better_elsewhere, answer.others_idle)
        claim = self.claims.claim(self.worker_name, host, classes)
        if claim is not None:
            self._reoffer = True
        elif self.claims.retry_in is not None:  # look again when a job's retry delay ends
            self.next_due = min(self.next_due, self.claims.retry_in) if self.next_due is not None \
                else self.claims.retry_in
        return claim

    def wait_for_work(self, timeout_s: float) -> bool:
        """Block until something may have become claimable (or the timeout); True if woken by an event."""
        return self.events.wait(timeout_s)
