"""Apply a validated manifest to Redis, whole or not at all, without holding Redis long.

A load takes the namespace's load lock (load_lock.lua: concurrent loads from two
receivers, or a receiver and ``fleet load``, queue behind it and can neither duplicate
nor lose a job), plans the diff (added / updated / unchanged / orphaned / revived) in
short pipelined reads (load_plan.py), stages the changes in chunks under a load id, and
applies them one chunk per short script (load_step.lua). The first step is the commit
point: until the last one, claims hand out nothing (claim.lua), and a loader killed in
between is finished from its staged chunks by whoever next meets its expired lease
(:func:`finish_interrupted_load`: the next load, the receiver, any worker's claim). A
load killed before it leaves the old manifest untouched. No script runs longer than one
chunk (10-35 ms at 200,000 jobs on a 2-core VM), and no command carries more than a chunk,
far below Redis's ``proto-max-bulk-len``, whatever the manifest's size.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Sequence

from ..errors import ManifestError, Problem, StoreError
from ..keys import Keys
from ..load_warnings import gpu_warnings
from ..manifest.identity import canonical_json, digest
from ..manifest.locate import path_text
from ..manifest.model import Manifest
from ..matching import ConstraintClass
from ..queue_order import queue_rank, width
from ..dependencies import STORE_KIND, parents_of
from ..states import script_names
from .errors import damage_message, refusal
from .load_plan import Diff, LoadRefused, check_write_targets, plan_diff, stored_fields
from .scripts import Scripts
from .workers import WorkerInfo

CHUNK_ACTIONS = 100  # job actions per staged chunk: one load_step call, 10-20 ms of Redis time
# A loader silent this long (killed, stalled) loses the lock to whoever finds it; a live one
# renews it at least every RENEW_EVERY_S, between its batches of reads, writes and steps.
LOCK_LEASE_S = 5.0
RENEW_EVERY_S = 1.0
STAGE_TTL_S = 3600  # staged chunks of a load nobody finishes expire on their own
STAGE_BATCH = 4  # staged chunks written per round trip
LOCK_POLL_S = 0.02

# rq runs this function for every fleet job; it finds the claimed job through rq's
# get_current_job(), so one pickled payload serves every job.
RQ_FUNC = "worker.execute.run_claimed"


@dataclass(frozen=True)
class PlanEntry:
    job_id: str
    name: str


@dataclass(frozen=True)
class LoadPlan:
    added: tuple[PlanEntry, ...]
    updated: tuple[PlanEntry, ...]
    unchanged: tuple[PlanEntry, ...]
    orphaned: tuple[PlanEntry, ...]
    revived: tuple[PlanEntry, ...]
    changed: bool
    dry_run: bool
    warnings: tuple[Problem, ...] = field(default=())
    refused: Problem | None = None  # a dry run's: why the real load would be refused (orphaning)

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("added", "updated", "unchanged", "orphaned", "revived")}

    def to_dict(self) -> dict:
        data: dict = {k: [{"job_id": e.job_id, "name": e.name} for e in getattr(self, k)]
                      for k in ("added", "updated", "unchanged", "orphaned", "revived")}
        data.update(changed=self.changed, dry_run=self.dry_run, warnings=[str(w) for w in self.warnings],
                    refused=str(self.refused) if self.refused else None)
        return data


# rq's own records of a finished job (its job hash, result stream and registry entry) expire
# after this (a failed one's after RQ_FAILURE_TTL_S, long enough to `rq requeue` it): fleet
# keeps its own outcome and history of every attempt, and rq's results, 4.8 KB a job kept
# forever, were half of what a finished job cost Redis (issue 18; bench/memory.py).
RQ_RESULT_TTL_S = 86400
RQ_FAILURE_TTL_S = 7 * 86400


@lru_cache(maxsize=4)
def rq_template(queue_name: str) -> tuple[bytes, ...]:
    """rq's own job hash fields for a fleet job, built by rq so rq-dashboard reads them natively.

    timeout -1 because fleet's runner enforces ``timeout_s`` on the whole process group.
    """
    from rq.job import Job

    job = Job.create(RQ_FUNC, id="template", connection=_NoConnection(), origin=queue_name,
                     timeout=-1, result_ttl=RQ_RESULT_TTL_S, failure_ttl=RQ_FAILURE_TTL_S)
    flat: list[bytes] = []
    for key, value in job.to_dict().items():
        if key in ("created_at", "description", "status"):
            continue  # filled per job by the script
        flat.append(key.encode())
        flat.append(value if isinstance(value, bytes) else str(value).encode())
    return tuple(flat)


class _NoConnection:
    """Job.create only stores the connection; the template is never saved through it."""


def rq_timestamp(epoch_s: float) -> str:
    """A time as rq writes its job records' times (rq.utils.utcformat)."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def manifest_digest(manifest: Manifest) -> str:
    """Changes whenever anything the store keeps from the manifest would change."""
    return digest([manifest.name, {n: h.to_dict() for n, h in manifest.hosts.items()},
                   [(j.job_id, j.scheduling_digest) for j in manifest.jobs]])


def job_classes(manifest: Manifest) -> list[ConstraintClass]:
    """Each job's constraint class, in the manifest's order (what the load stores and the GPU
    warnings judge, built once for both); equal classes are one object, so a caller can tell
    them apart by ``id`` without hashing each job's class again."""
    interned: dict[ConstraintClass, ConstraintClass] = {}
    return [interned.setdefault(cls, cls) for cls in (ConstraintClass.of(job, manifest.hosts) for job in manifest.jobs)]


def build_payload(manifest: Manifest, keys: Keys, now: float,
                  classes_of_jobs: list[ConstraintClass] | None = None) -> dict:
    classes: dict[str, str] = {}
    class_ids: dict[int, str] = {}  # by object: job_classes made equal classes one, so each is hashed once
    jobs = []
    ids_by_name = {job.name: job.job_id for job in manifest.jobs}
    for job, cls in zip(manifest.jobs, classes_of_jobs or job_classes(manifest)):
        fields_of = {ids_by_name[name]: field for name, field in parents_of(job.scheduling).items()}
        parents = sorted(fields_of)
        class_id = class_ids.get(id(cls))
        if class_id is None:
            class_id = class_ids[id(cls)] = cls.class_id
            classes[class_id] = canonical_json(cls.to_dict())
        jobs.append({
            "id": job.job_id,
            "name": job.name,
            "class": class_id,
            "priority": job.priority,
            "rank": str(queue_rank(job.priority, cls.min_vram_gib, width(cls))),
            # Parent ids too: a parent whose identity changed under the same name is a new edge.
            "sched": digest([job.scheduling_digest, parents]),
            "spec": json.dumps({"spec": job.to_dict(), "identity": job.identity,
                                "schema_version": job.schema_version}, sort_keys=True),
            "max_attempts": job.scheduling["max_attempts"],
            "parents": parents,
            # The kind of each edge that is not a plain `after` ("<parent id>:any,..."; deps.lua reads it).
            "dep_kinds": ",".join(f"{pid}:{STORE_KIND[fields_of[pid]]}" for pid in parents
                                  if fields_of[pid] != "after"),
            # the job it was forked from, where this manifest lists it: load_step.lua links them
            "forked_from": ids_by_name.get(job.scheduling.get("forked_from") or "", ""),
        })
    return {
        "now": repr(round(now, 6)),
        "now_iso": rq_timestamp(now),
        **keys.script_prefixes(),
        **script_names(),
        "manifest": {"name": manifest.name, "path": path_text(os.path.abspath(manifest.path)),
                     "digest": manifest_digest(manifest)},
        "hosts": {name: canonical_json(h.to_dict()) for name, h in manifest.hosts.items()},
        "classes": classes,
        "jobs": jobs,
    }


def apply_manifest(redis, keys: Keys, manifest: Manifest, dry_run: bool = False,
                   now: float | None = None, allow_orphaning: bool = False,
                   workers: Sequence[WorkerInfo] = (), wait_s: float = 600.0) -> LoadPlan:
    """Make the store match ``manifest`` (or, with ``dry_run``, say what that would do).

    Raises ManifestError, with nothing written, for a load that would orphan every listed job
    or most of many, unless ``allow_orphaning``: a truncated or empty manifest is far likelier
    a mistake than the end of the fleet's work. ``workers``: the registry, for the warnings
    about jobs no reported host could ever give their GPUs. ``wait_s``: how long to wait for
    another load holding the lock."""
    now = time.time() if now is None else now
    classes_of_jobs = job_classes(manifest)
    payload = build_payload(manifest, keys, now, classes_of_jobs)
    lock = LoadLock(redis, keys)
    diff = _plan(redis, keys, payload, manifest.path) if dry_run else _unchanged_without_lock(redis, keys, payload)
    if diff is not None:
        return _load_plan(manifest, diff, dry_run, allow_orphaning, workers, classes_of_jobs)
    lock.acquire(wait_s)
    try:
        diff = _plan(redis, keys, payload, manifest.path, lock.renew)
        result = _load_plan(manifest, diff, False, allow_orphaning, workers, classes_of_jobs)
        if diff.changed:
            try:
                check_write_targets(redis, keys, payload, diff, lock.renew)
            except LoadRefused as err:
                raise StoreError(f"manifest {manifest.path} not loaded, nothing written: {damage_message(str(err))}"
                                 ) from None
            chunks = _chunks(payload, diff, keys)
            lock.stage(chunks)
            lock.apply(len(chunks), what=f"manifest {manifest.path}")
        return result
    finally:
        lock.release_unless_applying()


def _unchanged_without_lock(redis, keys: Keys, payload: dict) -> Diff | None:
    """The plan of an unchanged reload, made without the lock (it writes nothing at all), or None:
    tried only when the store says it last applied this very manifest and no load is under
    way; if it finds a change after all, the load takes the lock and plans again."""
    digest, locked = redis.pipeline(transaction=False).hget(keys.manifest_meta, "digest").exists(
        keys.load_lock).execute()
    if locked or (digest.decode() if digest else None) != payload["manifest"]["digest"]:
        return None
    try:
        diff = plan_diff(redis, keys, payload)
    except LoadRefused:
        return None  # the locked plan says why
    return None if diff.changed else diff


def _plan(redis, keys: Keys, payload: dict, path: str, tick=None) -> Diff:
    try:
        return plan_diff(redis, keys, payload, tick)
    except LoadRefused as err:
        raise StoreError(f"manifest {path} not loaded, nothing written: {damage_message(str(err))}") from None


def _load_plan(manifest: Manifest, diff: Diff, dry_run: bool, allow_orphaning: bool,
               workers: Sequence[WorkerInfo], classes_of_jobs: list[ConstraintClass]) -> LoadPlan:
    """The plan to report; raises ManifestError (nothing written) for a refused orphaning."""
    problem = None
    orphans = len(diff.orphaned)
    if orphans and not allow_orphaning and (orphans == diff.listed or (orphans >= 10 and 2 * orphans > diff.listed)):
        problem = _orphaning_refused(manifest.path, orphans, diff.listed, dry_run)
        if not dry_run:
            raise ManifestError([problem])
    names = {job.job_id: job.name for job in manifest.jobs}
    for job_id in diff.orphaned:  # named as the store has them (the plan read their records)
        names[job_id] = stored_fields(diff.rows[job_id])["name"] or "?"

    def entries(ids: list[str]) -> tuple[PlanEntry, ...]:
        return tuple(PlanEntry(i, names.get(i, "?")) for i in ids)

    return LoadPlan(
        added=entries(diff.added), updated=entries(diff.updated), unchanged=entries(diff.unchanged),
        orphaned=entries(diff.orphaned), revived=entries(diff.revived), changed=diff.changed,
        dry_run=dry_run, warnings=(*manifest.warnings, *gpu_warnings(manifest, classes_of_jobs, workers)),
        refused=problem,
    )


def _chunks(payload: dict, diff: Diff, keys: Keys) -> list[str]:
    """The staged chunks, as load_step.lua reads them: the classes and hosts first (jobs name
    their class), the job actions in CHUNK_ACTIONS-sized runs, names and the meta last."""
    common = {k: payload[k] for k in ("now", "now_iso", "states", *keys.script_prefixes())}
    actions = [[kind, job] for kind, job in diff.actions]
    runs = [actions[i:i + CHUNK_ACTIONS] for i in range(0, len(actions), CHUNK_ACTIONS)] or [[]]
    chunks = []
    for n, run in enumerate(runs):
        chunk = {**common, "actions": run, "classes": {}, "hosts": {}, "unhosts": [], "names": {}}
        if n == 0:
            chunk.update(classes=diff.class_writes, hosts=diff.host_writes, unhosts=diff.host_deletes)
        if n == len(runs) - 1:
            chunk.update(names=diff.name_writes, meta=payload["manifest"])
        chunks.append(json.dumps(chunk))
    return chunks


class LoadLock:
    """The namespace's one load lock (load_lock.lua), held by one loader at a time."""

    def __init__(self, redis, keys: Keys, lease_s: float = LOCK_LEASE_S):
        self.redis, self.keys, self.lease_s = redis, keys, lease_s
        self.owner = uuid.uuid4().hex
        self.load_id = self.owner  # the staged chunks' name; a loader that finishes another's keeps its id
        self._script = Scripts(redis, ("load_lock", "load_step"))
        self.applying = False
        self.released = False
        self._renewed = 0.0

    def _call(self, mode: str, *args) -> list:
        reply = self._script.load_lock(keys=[self.keys.load_lock], args=[mode, self.owner, repr(time.time()),
                                                                        self.lease_s, *args])
        self._renewed = time.monotonic()
        return [v.decode() if isinstance(v, bytes) else v for v in reply]

    def acquire(self, wait_s: float) -> None:
        """Take the lock, waiting for a live holder, and finishing first a load whose loader died
        after its commit point (its chunks are staged: the store must become that manifest)."""
        deadline = time.monotonic() + wait_s
        while True:
            reply = self._call("acquire")
            if reply[0] == "ok":
                return
            if reply[0] == "resume":  # a dead loader's applying load is ours to finish
                self._finish_taken_over(reply)
                continue
            if time.monotonic() > deadline:
                raise StoreError(f"another manifest load (lock {self.keys.load_lock}) has held the store for over "
                                 f"{wait_s:.0f}s; wait for it, or if no loader runs, it is taken over once its lease "
                                 f"({self.lease_s:.0f}s) runs out")
            time.sleep(LOCK_POLL_S)

    def _finish_taken_over(self, reply: list) -> None:
        self.load_id, self.applying = reply[1], True
        self.apply(int(reply[3]), first=int(reply[2]), what="an interrupted load")
        self.load_id, self.released = self.owner, False  # the lock is free again; this loader takes it anew

    def renew(self) -> None:
        """Extend the lease if the last call was RENEW_EVERY_S ago (plan_diff calls it per batch)."""
        if time.monotonic() - self._renewed >= RENEW_EVERY_S and self._call("renew")[0] != "ok":
            raise StoreError(f"lost the load lock {self.keys.load_lock} (this loader stalled for over "
                             f"{self.lease_s:.0f}s and another took it); load the manifest again")

    def stage(self, chunks: list[str]) -> None:
        """Write the chunks under this load's id (expiring, should nobody ever apply them)."""
        # A few per round trip: Redis runs a client's pipelined commands back to back, so other
        # clients wait for the whole batch (16 chunks were ~5 MB, tens of milliseconds).
        for start in range(0, len(chunks), STAGE_BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for k in range(start, min(start + STAGE_BATCH, len(chunks))):
                pipe.set(self.keys.load_chunk(self.load_id, k), chunks[k], ex=STAGE_TTL_S)
            pipe.execute()
            self.renew()
        if self._call("stage", len(chunks))[0] != "ok":
            raise StoreError(f"lost the load lock {self.keys.load_lock} while staging (this loader stalled for over "
                             f"{self.lease_s:.0f}s); load the manifest again")

    def step(self, k: int, chunks: int, what: str = "the load") -> None:
        """Apply staged chunk ``k`` (load_step.lua); step 0 is the load's commit point."""
        try:
            with refusal():
                reply = self._script.load_step(keys=[*self._step_keys, self.keys.load_chunk(self.load_id, k)],
                                               args=[self.owner, k, repr(time.time()), self.lease_s,
                                                     *rq_template(self.keys.queue_name)])
        except StoreError as err:
            raise StoreError(f"{what} stopped at step {k + 1} of {chunks}, after its commit point: {err}; no job "
                             f"is claimed until it is finished: fix that key, then load the manifest again "
                             f"(the load finishes first)") from None
        self.applying = True
        self._renewed = time.monotonic()
        if (reply.decode() if isinstance(reply, bytes) else reply) == "lost":
            raise StoreError(f"{what} was taken over by another process (this loader stalled for over "
                             f"{self.lease_s:.0f}s); it finishes the load")

    @property
    def _step_keys(self) -> list[str]:
        k = self.keys
        return [k.load_lock, k.jobs, k.names, k.in_manifest, k.orphaned, k.seq, k.classes, k.hosts,
                k.manifest_meta, k.events, k.jobs_by_id]

    def apply(self, chunks: int, first: int = 0, what: str = "the load") -> None:
        """Run the steps from ``first`` to the last, which releases the lock."""
        for k in range(first, chunks):
            self.step(k, chunks, what)
        self.applying = False
        self.released = True  # the last step released it

    def release_unless_applying(self) -> None:
        """Give the lock up unless the load is past its commit point and unfinished: then it
        stays, for whoever finishes the load."""
        if not self.applying and not self.released:
            self._call("release")


def finish_interrupted_load(redis, keys: Keys) -> bool:
    """Finish a load whose loader died after its commit point, if its lease has run out (what
    a worker does when its claim is fenced by it); True when one was finished."""
    lock = LoadLock(redis, keys)
    reply = lock._call("resume")
    if reply[0] != "resume":
        return False
    lock._finish_taken_over(reply)
    return True


def _orphaning_refused(path: str, orphaned: int, listed: int, dry_run: bool) -> Problem:
    share = "all of them" if orphaned == listed else "more than half"
    outcome = "the real load would be refused" if dry_run else "refused, nothing was written"
    return Problem(path, f"this load would orphan {orphaned} of the {listed} jobs the store lists ({share}): "
                         f"{outcome}; if that is meant, pass --allow-orphaning to fleet load")
