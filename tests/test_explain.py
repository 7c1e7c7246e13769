"""`fleet explain` of a pending job: what each worker (and host) says about it, on both servers."""

from __future__ import annotations

import time

from test_claims import job, load

from scheduler.explain import explain
from scheduler.resources import GpuInfo, HostResources
from scheduler.store.workers import WorkerInfo

A100 = HostResources("gpu-a100", cores=32, ram_total_gib=256, ram_available_gib=256,
                     gpus=(GpuInfo(0, "A100", 80, 80, uuid="GPU-a"),))


def worker(name: str, host: HostResources, state: str, seen_s_ago: float = 1.0) -> WorkerInfo:
    return WorkerInfo(name, host, state, False, None, time.time() - seen_s_ago, 30.0)


def explained(store, name: str, workers: list[WorkerInfo]):
    record = store.jobs.get(store.jobs.resolve(name))
    return explain(store.redis, store.keys, record, workers, [])


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
