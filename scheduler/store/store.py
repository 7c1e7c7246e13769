"""The store facade: one Redis client, one namespace's keys, and every read and write of them.

Callers ask the store and format what it returns, as dramatiq's broker and huey's storage
own their I/O. Methods raise redis-py's errors as they come: callers wrap them in
:meth:`Store.errors`, so the CLI prints one line.
"""

from __future__ import annotations

import time

from ..errors import StoreError
from ..keys import Keys
from ..manifest.model import HostSpec, Manifest
from ..matching import ConstraintClass
from ..settings import Settings
from .actions import ActionResult, apply_action, drain
from .archive import AttemptArchive
from .catalog import Catalog
from .claims import DEFAULT_LEASE_S, Claims
from .errors import store_errors
from .events import EventWaiter
from .loading import LoadPlan, apply_manifest
from .queries import JobQueries, JobRecord
from .rq_bridge import absorb_rq_requeues, clear_dead_rq_workers
from .streams import Streams
from .views import ExplainView, FleetView, JobsView, pending_names, read_explain, read_fleet, read_jobs
from .workers import WorkerInfo, forget_worker, list_workers, worker_info


class Store:
    def __init__(self, redis, keys: Keys, settings: Settings | None = None):
        self.redis = redis
        self.keys = keys
        self.settings = settings or Settings(namespace=keys.namespace)
        self.jobs = JobQueries(redis, keys)
        self.streams = Streams(redis, keys)
        self.archive = AttemptArchive(redis, keys)
        self.catalog = Catalog(keys)  # remembers the damaged records it said, for as long as this store lives

    @classmethod
    def connect(cls, settings: Settings) -> "Store":
        """Connect and PING, so an unreachable Redis is one clear error up front."""
        client = settings.connect()
        with store_errors(settings):
            client.ping()
        return cls(client, Keys(settings.namespace), settings)

    def errors(self):
        """Context manager turning redis-py failures into StoreError for this store's URL."""
        return store_errors(self.settings)

    def load(self, manifest: Manifest, dry_run: bool = False, allow_orphaning: bool = False) -> LoadPlan:
        """Apply ``manifest`` whole or not at all, in short steps (scheduler/store/loading.py),
        on this store's client: no step takes longer than an ordinary command may. A load that
        would orphan most of the fleet raises ManifestError unless ``allow_orphaning``."""
        with self.errors():
            workers = self.workers() if manifest.hosts else []
            return apply_manifest(self.redis, self.keys, manifest, dry_run=dry_run, allow_orphaning=allow_orphaning,
                                  workers=workers)

    def persistence(self) -> tuple[str | None, str]:
        """Redis's ``appendonly`` and ``save`` settings; (None, "") where CONFIG is refused."""
        import redis

        try:
            config = self.redis.config_get("appendonly")
            config.update(self.redis.config_get("save"))
        except redis.ResponseError:
            return None, ""
        return config.get("appendonly"), config.get("save") or ""

    def hosts(self, own: str | None = None) -> dict[str, HostSpec]:
        """The manifest's ``[hosts]`` by name; a damaged record is left out, said once, unless it
        is ``own``'s (StoreError: see :meth:`Catalog.hosts`)."""
        return self.catalog.hosts(self.redis.hgetall(self.keys.hosts), own)

    def workers(self, now: float | None = None) -> list[WorkerInfo]:
        """Every worker seen in the last day (:func:`list_workers`)."""
        return list_workers(self.redis, self.keys, time.time() if now is None else now)

    def worker(self, name: str, now: float | None = None) -> WorkerInfo | None:
        """Worker ``name`` as the registry shows it, or None (:func:`worker_info`)."""
        return worker_info(self.redis, self.keys, name, time.time() if now is None else now)

    def forget_worker(self, name: str) -> None:
        """Remove worker ``name``'s registry record now (:func:`forget_worker`)."""
        forget_worker(self.redis, self.keys, name)

    def fleet_view(self, failures: int, now: float | None = None) -> FleetView:
        """What `fleet status` shows, with the newest ``failures`` failed jobs, in two round trips
        whatever the store's size (:func:`read_fleet`)."""
        return read_fleet(self, time.time() if now is None else now, failures)

    def jobs_view(self, records: list[JobRecord], now: float | None = None) -> JobsView:
        """What the REASON, ELAPSED and PROGRESS of ``records`` are computed from, in three round
        trips whatever their number (:func:`read_jobs`)."""
        return read_jobs(self, records, time.time() if now is None else now)

    def pending_names(self, class_ids: list[str], per_class: int) -> dict[str, list[str]]:
        """The names of the first ``per_class`` waiting jobs of each class (:func:`pending_names`)."""
        return pending_names(self, class_ids, per_class)

    def explain_view(self, job: JobRecord, workers: list[WorkerInfo] | None = None,
                     now: float | None = None) -> ExplainView:
        """What decides where ``job`` is, in at most three round trips (:func:`read_explain`);
        the registry is read unless ``workers`` are given."""
        return read_explain(self, job, time.time() if now is None else now, workers)

    def claims(self, lease_s: float = DEFAULT_LEASE_S) -> Claims:
        """Claims, leases and the reaper (claim.lua, finish.lua, renew.lua) on this store's client."""
        return Claims(self.redis, self.keys, lease_s=lease_s, confirm_on_replica=self.settings.sentinel)

    def apply_action(self, action: str, job_ids: list[str], reset: bool = False) -> list[ActionResult]:
        """Apply an operator action to the jobs, all or nothing (:func:`scheduler.store.actions.apply_action`)."""
        return apply_action(self.redis, self.keys, action, job_ids, reset=reset)

    def drain(self, worker: str, undo: bool = False, reason: str = "") -> bool:
        """Ask a worker to claim no more (saying why, ``reason``), or to resume (:func:`drain`);
        False if there is no such worker."""
        return drain(self.redis, self.keys, worker, undo=undo, reason=reason)

    def absorb_rq_requeues(self) -> int:
        """Bring the jobs rq requeued (`rq requeue`, rq-dashboard) back into fleet's pending
        index (:func:`absorb_rq_requeues`); the receiver does it every tick, so a requeue lands
        within a second even while every worker is busy."""
        return absorb_rq_requeues(self.redis, self.keys, self.keys.rq_queue)

    def clear_dead_rq_workers(self, now: float | None = None) -> list[str]:
        """Take the workers fleet knows are dead out of rq's worker registry (:func:`clear_dead_rq_workers`)."""
        return clear_dead_rq_workers(self.redis, self.keys, time.time() if now is None else now)

    def event_waiter(self) -> EventWaiter:
        """A cursor into the events stream for one waiting worker."""
        return EventWaiter(self.redis, self.keys)

    def claim_view(self, own: str, events: EventWaiter) -> tuple[dict[str, HostSpec], dict[str, ConstraintClass]]:
        """What a worker reads before each claim, in one round trip (as three they were ~0.7 ms of
        every job's dispatch): it moves ``events``'s cursor to the stream's end, then returns the
        hosts (``own``'s damaged record is a StoreError) and the classes."""
        pipe = self.redis.pipeline(transaction=False)
        events.queue_mark(pipe)
        pipe.hgetall(self.keys.hosts)
        pipe.hgetall(self.keys.classes)
        last, raw_hosts, raw_classes = pipe.execute()
        events.set_mark(last)
        return self.catalog.hosts(raw_hosts, own), self.catalog.classes(raw_classes)


__all__ = ["Store", "StoreError"]
