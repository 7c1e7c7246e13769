"""Plain data for the pure status and explain rules: jobs from a manifest text, workers and
records built by hand, no Redis."""

from __future__ import annotations

from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import JobState
from scheduler.store.queries import JobRecord
from scheduler.store.workers import WorkerInfo

NOW = 1_000_000.0
A100 = HostResources("gpu-a100", cores=32, ram_total_gib=256, ram_available_gib=256,
                     gpus=(GpuInfo(0, "A100", 80, 80, uuid="GPU-a"),))
RTX = HostResources("gpu-24", cores=16, ram_total_gib=64, ram_available_gib=64,
                    gpus=(GpuInfo(0, "RTX 4090", 24, 24, uuid="GPU-r"),))
LAPTOP = HostResources("laptop", cores=4, ram_total_gib=16, ram_available_gib=16)


def manifest(text: str):
    return parse_manifest(f"schema_version = 1\n{text}", "m.toml")


def worker(name: str, host: HostResources, state: str = "idle", seen_s_ago: float = 1.0, note: str = "") -> WorkerInfo:
    return WorkerInfo(name, host, state, False, None, NOW - seen_s_ago, 30.0, note)


def record(spec, state: JobState = JobState.PENDING, manifest_hosts=None, reason: str | None = None,
           attempts: int = 0, indexed: bool = True) -> JobRecord:
    """The store's record of ``spec`` (a JobSpec from :func:`manifest`) in ``state``."""
    return JobRecord(job_id=spec.job_id, name=spec.name, spec=spec.to_dict(), state=state, priority=spec.priority,
                     attempts=attempts, max_attempts=3, in_manifest=True, host=None, worker=None, created_at=NOW,
                     updated_at=NOW, state_at=NOW, class_id=ConstraintClass.of(spec, manifest_hosts or {}).class_id,
                     indexed=indexed, reason=reason)
