"""The REASON column and the job rows of `fleet jobs` from plain data (scheduler/reasons.py and
scheduler/job_rows.py are pure): one phrase per job from the same rule explain uses."""

from __future__ import annotations

import dataclasses

from support.views import A100, LAPTOP, NOW, RTX, manifest, record, worker

from scheduler.job_rows import duration, job_row, progress_of
from scheduler.matching import ConstraintClass
from scheduler.states import JobState
from scheduler.status import document
from scheduler.store.views import FleetView, JobsView

JOBS = """
[[jobs]]
name = "huge"
model = "m"
require_cuda = true
min_vram_gib = 200
[[jobs]]
name = "small"
model = "m"
seed = 1
require_cuda = true
min_vram_gib = 8
[[jobs]]
name = "child"
model = "m"
seed = 2
after = ["small"]
"""
M = manifest(JOBS)
SPECS = {j.name: j for j in M.jobs}
CLASSES = {j.name: ConstraintClass.of(j, M.hosts) for j in M.jobs}


def view(workers, ledgers=None, ahead=None, attempts=None, metrics=None) -> JobsView:
    return JobsView(NOW, list(workers), dict(M.hosts), {c.class_id: c for c in CLASSES.values()}, ledgers or {},
                    ahead or {}, attempts or {}, metrics or {})


def reason(name: str, v: JobsView, **kw) -> str | None:
    return job_row(record(SPECS[name], **kw), v)["reason"]


def test_pending_jobs_say_why_in_one_phrase():
    fleet = [worker("rtx", RTX), worker("a100", A100)]
    assert reason("huge", view(fleet)) == "No host fits: min_vram_gib 200"
    assert reason("small", view([])) == "No live worker"
    assert reason("small", view([worker("rtx", RTX, "dead")])) == "No live worker"
    assert reason("small", view([worker("laptop", LAPTOP)])) == "No host fits: require_cuda"
    assert reason("small", view(fleet)) == "Starting"  # a capable host is free and it is next
    assert reason("small", view(fleet, ahead={SPECS["small"].job_id: 3})) == "Priority"
    full = {"vram:GPU-r": 24.0}, {"vram:GPU-a": 80.0}
    assert reason("small", view(fleet, ledgers={"gpu-24": full[0], "gpu-a100": full[1]})) == "Resources (busy)"
    assert reason("small", view([worker("rtx", RTX, "draining"), worker("laptop", LAPTOP)])) == "Draining"
    assert reason("small", view([worker("rtx", RTX, "paused", note="disk full")])) == "Paused"
    assert reason("child", view(fleet), indexed=False) == "Dependency"


def test_other_states_say_held_dependency_failed_or_the_recorded_reason():
    v = view([worker("rtx", RTX)])
    assert reason("small", v, state=JobState.HELD) == "Held"
    assert reason("child", v, state=JobState.BLOCKED) == "Dependency failed"
    assert reason("small", v, state=JobState.FAILED, reason="exit code 4") == "exit code 4"
    assert reason("small", v, state=JobState.FINISHED) is None
    orphan = dataclasses.replace(record(SPECS["small"]), in_manifest=False)
    assert job_row(orphan, v)["reason"] == "Orphaned"
    running = dataclasses.replace(record(SPECS["small"], state=JobState.RUNNING), worker="rtx")
    assert job_row(running, view([worker("rtx", RTX, "draining")]))["reason"] == "Draining"
    assert job_row(running, v)["reason"] is None


def test_a_row_has_its_latest_attempts_times_and_progress():
    running = dataclasses.replace(record(SPECS["small"], state=JobState.RUNNING, attempts=2), worker="rtx")
    v = view([worker("rtx", RTX)], attempts={running.job_id: {"attempt": 2, "started_at": NOW - 125}},
             metrics={running.job_id: [{"loss": 0.3}, {"step": 13, "total": 40, "loss": 0.4}]})
    row = job_row(running, v)
    assert (row["started_at"], row["ended_at"], row["elapsed_s"], row["progress"]) == (NOW - 125, None, 125.0, "13/40")
    done = record(SPECS["small"], state=JobState.FINISHED, attempts=1)
    v = view([], attempts={done.job_id: {"attempt": 1, "started_at": NOW - 90, "ended_at": NOW - 30}})
    row = job_row(done, v)
    assert (row["ended_at"], row["elapsed_s"], row["progress"]) == (NOW - 30, 60.0, None)
    assert progress_of([{"epoch": 3, "epochs": 10}]) == "3/10" and progress_of([{"epoch": 2.0}]) == "epoch 2"
    assert progress_of([{"step": True, "total": 3}, {"loss": 1}]) is None  # a bool is not a count
    assert [duration(s) for s in (5, 307, 3723, 2 * 86400 + 3723, None)] == ["0:05", "5:07", "1:02:03",
                                                                              "2-01:02:03", "-"]


def test_status_shows_one_block_per_unmet_need_and_names_the_jobs_workers_run():
    """Ten classes that differ only in their timeouts are one need nobody can meet, not ten."""
    jobs = "".join(f'[[jobs]]\nname = "big{i}"\nmodel = "m"\nseed = {i}\nrequire_cuda = true\nmin_vram_gib = 200\n'
                   f'timeout_s = {60 + i}\n' for i in range(10))
    m = manifest(jobs)
    classes = {c.class_id: c for c in (ConstraintClass.of(j, m.hosts) for j in m.jobs)}
    assert len(classes) == 10
    busy = dataclasses.replace(worker("rtx", RTX, "busy"), job_id="j1", jobs=("j1",))
    fleet_view = FleetView(NOW, {s.value: 0 for s in JobState} | {"orphaned": 0}, [busy], {}, classes,
                           {cid: 1 for cid in classes}, [], running_names={"j1": "train-cnn"})
    doc = document(fleet_view, {cid: [f"big{i}"] for i, cid in enumerate(classes)})
    (need,) = doc["unrunnable"]
    assert (need["reason"], need["pending"], need["classes"], len(need["jobs"])) == \
        ("No host fits: min_vram_gib 200", 10, 10, 5)
    assert doc["workers"][0]["job_names"] == ["train-cnn"]
