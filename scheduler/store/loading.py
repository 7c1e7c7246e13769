"""Apply a validated manifest to Redis in one atomic step and report the plan.

The whole diff (added / updated / unchanged / orphaned / revived) is computed and
applied inside one Lua script, so concurrent loads from two receivers, or a
receiver and ``fleet load``, serialise on Redis and can neither duplicate nor lose
a job.
"""

from __future__ import annotations

import json
import os
import time
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
from ..states import script_names
from .errors import damage_message
from .scripts import Scripts
from .workers import WorkerInfo

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


@lru_cache(maxsize=4)
def rq_template(queue_name: str) -> tuple[bytes, ...]:
    """rq's own job hash fields for a fleet job, built by rq so rq-dashboard reads them natively.

    Kept forever: result_ttl and failure_ttl of -1 (fleet's history is the point);
    timeout -1 because fleet's runner enforces ``timeout_s`` on the whole process group.
    """
    from rq.job import Job

    job = Job.create(RQ_FUNC, id="template", connection=_NoConnection(), origin=queue_name,
                     timeout=-1, result_ttl=-1, failure_ttl=-1)
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


def build_payload(manifest: Manifest, keys: Keys, dry_run: bool, now: float, allow_orphaning: bool = False,
                  classes_of_jobs: list[ConstraintClass] | None = None) -> dict:
    classes: dict[str, str] = {}
    class_ids: dict[int, str] = {}  # by object: job_classes made equal classes one, so each is hashed once
    jobs = []
    ids_by_name = {job.name: job.job_id for job in manifest.jobs}
    for job, cls in zip(manifest.jobs, classes_of_jobs or job_classes(manifest)):
        parents = sorted(ids_by_name[name] for name in job.scheduling["after"])
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
        })
    return {
        "now": repr(round(now, 6)),
        "now_iso": rq_timestamp(now),
        "dry_run": dry_run,
        "allow_orphaning": allow_orphaning,
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
                   workers: Sequence[WorkerInfo] = ()) -> LoadPlan:
    """Make the store match ``manifest`` (or, with ``dry_run``, say what that would do).

    Raises ManifestError, with nothing written, for a load that would orphan every listed job
    or most of many (apply_manifest.lua), unless ``allow_orphaning``: a truncated or empty
    manifest is far likelier a mistake than the end of the fleet's work. ``workers``: the
    registry, for the warnings about jobs no reported host could ever give their GPUs."""
    now = time.time() if now is None else now
    classes_of_jobs = job_classes(manifest)
    payload = build_payload(manifest, keys, dry_run, now, allow_orphaning, classes_of_jobs)
    script = Scripts(redis).apply_manifest
    raw = script(
        keys=[keys.jobs, keys.names, keys.in_manifest, keys.orphaned, keys.seq, keys.classes, keys.hosts,
              keys.manifest_meta, keys.events, keys.jobs_by_id],
        args=[json.dumps(payload), *rq_template(keys.queue_name)],
    )
    result = json.loads(raw)
    if "error" in result:
        raise StoreError(f"manifest {manifest.path} not loaded, nothing written: {damage_message(result['error'])}")
    problem = _orphaning_refused(manifest.path, result["refused"], dry_run) if "refused" in result else None
    if problem and not dry_run:
        raise ManifestError([problem])
    names = {job.job_id: job.name for job in manifest.jobs}
    orphan_ids = _as_list(result["orphaned"])
    if orphan_ids:
        pipe = redis.pipeline(transaction=False)
        for job_id in orphan_ids:
            pipe.hget(keys.job(job_id), "name")
        for job_id, name in zip(orphan_ids, pipe.execute()):
            names[job_id] = name.decode() if name else "?"

    def entries(kind: str) -> tuple[PlanEntry, ...]:
        return tuple(PlanEntry(i, names.get(i, "?")) for i in _as_list(result[kind]))

    return LoadPlan(
        added=entries("added"), updated=entries("updated"), unchanged=entries("unchanged"),
        orphaned=entries("orphaned"), revived=entries("revived"), changed=bool(result["changed"]),
        dry_run=dry_run, warnings=(*manifest.warnings, *gpu_warnings(manifest, classes_of_jobs, workers)),
        refused=problem,
    )


def _orphaning_refused(path: str, refused: dict, dry_run: bool) -> Problem:
    orphaned, listed = int(refused["orphaned"]), int(refused["listed"])
    share = "all of them" if orphaned == listed else "more than half"
    outcome = "the real load would be refused" if dry_run else "refused, nothing was written"
    return Problem(path, f"this load would orphan {orphaned} of the {listed} jobs the store lists ({share}): "
                         f"{outcome}; if that is meant, pass --allow-orphaning to fleet load")


def _as_list(value) -> list:
    # cjson encodes an empty Lua table as {} rather than [].
    return value if isinstance(value, list) else []
