"""`fleet explain` of a pending job: what each worker (and host) says about it, read through the
store on both servers, and the pure rule (scheduler/explain.py) over plain data."""

from __future__ import annotations

import time

from support.views import NOW, RTX, manifest, record
from support.views import worker as seen_worker
from test_claims import job, load

from scheduler.explain import explanation
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import JobState
from scheduler.store.views import ExplainView
from scheduler.store.workers import WorkerInfo

A100 = HostResources("gpu-a100", cores=32, ram_total_gib=256, ram_available_gib=256,
                     gpus=(GpuInfo(0, "A100", 80, 80, uuid="GPU-a"),))


def worker(name: str, host: HostResources, state: str, seen_s_ago: float = 1.0) -> WorkerInfo:
    return WorkerInfo(name, host, state, False, None, time.time() - seen_s_ago, 30.0)


def explained(store, name: str, workers: list[WorkerInfo]):
    record = store.jobs.get(store.jobs.resolve(name))
    return explanation(store.explain_view(record, workers=workers))


def test_a_draining_worker_is_not_counted_as_one_that_can_run_the_job(store):
    """A drained idle worker claims nothing: it used to read 'can run it (draining)' and
    'every worker that can run it is busy'."""
    load(store, job("small", require_cuda=True, min_vram_gib=8))
    result = explained(store, "small", [worker("w1", A100, "draining")])
    assert result.runnable_by == []
    assert result.per_worker == [("w1@gpu-a100", "draining, claims no more (`fleet drain --undo w1`)")]
    assert "every worker that can run it is busy" not in "\n".join(result.lines())


def test_with_every_worker_gone_the_job_is_judged_against_recent_workers_and_declared_hosts(store):
    """Burst workers that exited: 'No live worker is registered' alone hid that no host of the
    fleet could ever run a 200 GiB job."""
    load(store, job("huge", require_cuda=True, min_vram_gib=200) + job("fits", require_cuda=True, min_vram_gib=40),
         '[hosts.gpu-a100]\n[hosts.laptop]\ndeny_jobs = ["m"]\n[hosts.spare]\n')
    gone = [worker("a100-1", A100, "stopped", seen_s_ago=180)]
    huge = explained(store, "huge", gone)
    text = "\n".join(huge.lines())
    assert "a100-1@gpu-a100 (stopped, last seen 3m ago): min_vram_gib 200 > free 80" in text
    assert "host laptop (declared, no worker seen): host deny_jobs matches 'm'" in text
    assert "host spare (declared, no worker seen): its rules admit it" in text
    assert "host gpu-a100 (declared" not in text  # judged through its worker, at its whole capacity
    assert huge.summary.startswith("No live worker is registered, and none seen recently could run it")
    fits = explained(store, "fits", gone)
    assert fits.runnable_by == ["a100-1"] and "seen recently could run it" in fits.summary


def view_of(spec, workers, ledgers=None, hosts=None, attempts=(), parents=(), ahead=None, **state) -> ExplainView:
    return ExplainView(NOW, record(spec, **state), list(attempts), list(workers), hosts or {}, ledgers or {},
                       list(parents), ahead)


BIG = manifest('[[jobs]]\nname = "big-cnn"\nmodel = "m"\nrequire_cuda = true\nmin_vram_gib = 40\n').jobs[0]


def test_explain_names_the_first_failing_constraint_per_live_worker():
    result = explanation(view_of(BIG, [seen_worker("gpu-24", RTX), seen_worker("a100", A100, "busy"),
                                       seen_worker("gone", A100, "dead")], ahead=2))
    assert result.per_worker == [("gpu-24@gpu-24", "min_vram_gib 40 > free 24"), ("a100@gpu-a100", "can run it (busy)")]
    assert result.runnable_by == ["a100"]
    assert result.waiting_for == ["2 job(s) of the same constraints ahead of it (priority, then FIFO)",
                                  "every worker that can run it is busy"]


def test_a_host_whose_running_jobs_hold_the_vram_is_busy_not_unable():
    result = explanation(view_of(BIG, [seen_worker("a100", A100, "busy")], ledgers={"gpu-a100": {"vram:GPU-a": 60}}))
    assert result.per_worker == [("a100@gpu-a100", "busy: min_vram_gib 40 > free 20")]
    assert result.summary == "Some workers could run it once their host frees resources."


def test_a_job_waiting_for_its_parents_names_the_unfinished_ones():
    child = manifest('[[jobs]]\nname = "parent"\nmodel = "m"\n[[jobs]]\nname = "other"\nmodel = "m"\nseed = 1\n'
                     '[[jobs]]\nname = "child"\nmodel = "m"\nseed = 2\nafter = ["parent", "other"]\n').jobs[2]
    result = explanation(view_of(child, [], parents=[("parent", "running"), ("other", "finished")], indexed=False))
    assert result.summary == "Waiting for parent (running) to finish (after = ['parent', 'other'])."


def test_a_failed_job_says_why_its_last_attempt_ended():
    result = explanation(view_of(BIG, [], attempts=[{"attempt": 1, "outcome": "failed", "reason": "exit code 4"}],
                                 state=JobState.FAILED))
    assert result.summary == "Last attempt: exit code 4. `fleet retry big-cnn` makes it pending again."
