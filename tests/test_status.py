"""The `fleet status` document from plain data (scheduler/status.py is pure): what nobody can
run, which hosts are undeclared, the recent failures, without Redis."""

from __future__ import annotations

from support.views import A100, LAPTOP, NOW, RTX, manifest, record, worker

from scheduler.matching import ConstraintClass
from scheduler.states import JobState
from scheduler.status import document, unrunnable
from scheduler.store.views import FleetView

JOBS = """
[hosts.gpu-24]
[[jobs]]
name = "big-cnn"
model = "m"
require_cuda = true
min_vram_gib = 40
[[jobs]]
name = "small"
model = "m"
seed = 1
require_cuda = true
min_vram_gib = 8
[[jobs]]
name = "cpu"
model = "m"
seed = 2
min_cores = 2
"""


def fleet(workers, pending: dict[str, int], failures=()) -> tuple[FleetView, dict[str, ConstraintClass]]:
    m = manifest(JOBS)
    classes = {j.name: ConstraintClass.of(j, m.hosts) for j in m.jobs}
    view = FleetView(NOW, {s.value: 0 for s in JobState} | {"orphaned": 0}, list(workers), dict(m.hosts),
                     {c.class_id: c for c in classes.values()},
                     {classes[name].class_id: n for name, n in pending.items()}, list(failures))
    return view, classes


def test_a_class_no_live_worker_can_run_is_unrunnable_with_its_sample_names():
    view, classes = fleet([worker("gpu-24", RTX), worker("a100", A100, "dead")], {"big-cnn": 7, "small": 2})
    big = classes["big-cnn"].class_id
    assert unrunnable(view) == [big]  # the A100 that could run it is dead
    doc = document(view, {big: ["big-cnn", "big-cnn-2"]})
    assert doc["unrunnable"] == [{"pending": 7, "jobs": ["big-cnn", "big-cnn-2"], "needs": classes["big-cnn"].to_dict(),
                                  "reason": "No host fits: min_vram_gib 40", "classes": 1}]


def test_a_class_with_no_pending_job_is_never_unrunnable():
    view, _ = fleet([worker("laptop", LAPTOP)], {"big-cnn": 0, "small": 0, "cpu": 1})
    assert unrunnable(view) == []


def test_a_live_worker_at_its_whole_capacity_makes_a_class_runnable_whatever_it_runs_now():
    view, classes = fleet([worker("a100", A100, "busy")], {"big-cnn": 1, "cpu": 1})
    assert unrunnable(view) == []


def test_a_worker_on_a_host_not_in_hosts_is_marked_undeclared():
    view, _ = fleet([worker("gpu-24", RTX), worker("laptop", LAPTOP)], {})
    doc = document(view, {})
    assert {w["name"]: w["declared"] for w in doc["workers"]} == {"gpu-24": True, "laptop": False}
    assert all(w["heartbeat_age_s"] == 1.0 for w in doc["workers"])


def test_recent_failures_say_where_and_why_newest_first():
    m = manifest(JOBS)
    failed = [record(m.jobs[2], JobState.FAILED, reason="exit code 4"), record(m.jobs[1], JobState.FAILED)]
    view, _ = fleet([], {}, failed)
    assert [(f["name"], f["reason"]) for f in document(view, {})["recent_failures"]] == [
        ("cpu", "exit code 4"), ("small", None)]


def test_each_gpu_shows_what_fleet_jobs_hold_on_it_and_what_that_leaves(store):
    """A simulated GPU's probed free VRAM never moves: status must count the running jobs'
    reservations (as the claim does), and name the jobs, for probed and simulated hosts alike."""
    import time

    import tomli_w

    from scheduler.manifest import parse_manifest
    from scheduler.resources import GpuInfo, HostResources
    from scheduler.status import status_document
    from scheduler.store.claims import Claims
    from scheduler.store.workers import queue_publish

    host = HostResources("gpu-24", 8, 64, 64, (GpuInfo(0, "RTX 4090", 24.0, 24.0, uuid="GPU-a"),
                                               GpuInfo(1, "RTX 4090", 24.0, 24.0, uuid="GPU-b")), simulated=True)
    text = tomli_w.dumps({"schema_version": 1, "jobs": [
        {"name": "sixteen", "model": "m", "require_cuda": True, "min_vram_gib": 16, "min_cores": 0},
        {"name": "whole", "model": "m", "seed": 1, "require_cuda": True, "min_cores": 0}]})
    manifest = parse_manifest(text, "m.toml")
    store.load(manifest)
    claims = Claims(store.redis, store.keys)
    classes = [ConstraintClass.of(j, {}) for j in manifest.jobs]
    assert claims.claim("w", host, classes) and claims.claim("w", host, classes)
    pipe = store.redis.pipeline()
    queue_publish(pipe, store.keys, "w", {"name": "w", "host": "gpu-24", "state": "busy", "simulated": "1",
                                          "resources": host.to_json(), "lease_s": 30}, time.time())
    pipe.execute()
    (w,) = status_document(store)["workers"]
    by_job = {tuple(g["held_by"]): g for g in w["gpus"]}
    assert by_job[("sixteen",)]["vram_free_gib"] == 8 and by_job[("sixteen",)]["reserved_gib"] == 16
    assert by_job[("whole",)]["vram_free_gib"] == 0 and by_job[("whole",)]["reserved_gib"] == 24
