"""Soft preferences: who gets first pick, and that a preference can only delay, never starve."""

from __future__ import annotations

from scheduler.manifest.model import HostSpec
from scheduler.matching import ConstraintClass
from scheduler.resources import GpuInfo, HostResources
from scheduler.store.workers import WorkerInfo
from worker.preference import Deferrals, better_placed


def host(name: str, gpus=(), cores: int = 16, ram: float = 64) -> HostResources:
    return HostResources(name, cores, ram, ram, tuple(GpuInfo(i, f"g{v}", v, v, uuid=f"{name}-{i}")
                                                      for i, v in enumerate(gpus)))


def cls(**kw) -> ConstraintClass:
    base = dict(require_cuda=False, prefer_cuda=False, min_vram_gib=0.0, min_ram_gib=0.0, min_cores=1,
                allowed_hosts=(), denied_hosts=(), rejected_by=())
    base.update(kw)
    return ConstraintClass(**base)


def idle(h: HostResources, name: str) -> WorkerInfo:
    return WorkerInfo(name, h, "idle", True, None, 0.0, 30.0)


HOSTS = {"big": HostSpec("big", priority=10), "small": HostSpec("small", priority=0)}


def test_higher_priority_host_gets_first_pick():
    assert better_placed(cls(), me=host("small"), other=host("big"), hosts=HOSTS)
    assert not better_placed(cls(), me=host("big"), other=host("small"), hosts=HOSTS)


def test_small_gpu_job_prefers_the_smallest_card_that_fits():
    c = cls(require_cuda=True, min_vram_gib=10)
    a100, rtx = host("a100", [80]), host("rtx", [24])
    assert better_placed(c, me=a100, other=rtx, hosts={})
    assert not better_placed(c, me=rtx, other=a100, hosts={})
    # A job the small card cannot hold is no reason for the big card to step aside.
    assert not better_placed(cls(require_cuda=True, min_vram_gib=40), me=a100, other=rtx, hosts={})


def test_gpu_fit_outranks_host_priority_and_cpu_jobs_prefer_cpu_hosts():
    hosts = {"a100": HostSpec("a100", priority=10), "rtx": HostSpec("rtx", priority=0),
             "cpu": HostSpec("cpu", priority=0)}
    small_gpu = cls(require_cuda=True, min_vram_gib=10)
    assert better_placed(small_gpu, me=host("a100", [80]), other=host("rtx", [24]), hosts=hosts)
    assert better_placed(cls(), me=host("a100", [80]), other=host("cpu"), hosts=hosts)
    assert not better_placed(cls(), me=host("cpu"), other=host("a100", [80]), hosts=hosts)


def test_prefer_cuda_goes_to_an_idle_cuda_worker():
    c = cls(prefer_cuda=True)
    assert better_placed(c, me=host("cpu"), other=host("gpu", [24]), hosts={})
    assert not better_placed(cls(), me=host("cpu"), other=host("gpu", [24]), hosts={})


def test_a_host_that_refuses_the_job_is_never_better_placed():
    c = cls(denied_hosts=("big",))
    assert not better_placed(c, me=host("small"), other=host("big"), hosts=HOSTS)


def test_deferral_only_delays_by_the_grace_period():
    d = Deferrals(grace_s=0.5)
    me, c = host("small"), cls()
    workers = [idle(host("big"), "w-big")]
    keep, due = d.filter([c], me, "w-small", workers, HOSTS, now=100.0)
    assert keep == [] and abs(due - 0.5) < 1e-9
    keep, _ = d.filter([c], me, "w-small", workers, HOSTS, now=100.3)
    assert keep == []
    keep, due = d.filter([c], me, "w-small", workers, HOSTS, now=100.5)
    assert keep == [c] and due is None
    # Once the better worker is busy, nothing is deferred.
    busy = [WorkerInfo("w-big", host("big"), "busy", True, "x", 0.0, 30.0)]
    assert d.filter([c], me, "w-small", busy, HOSTS, now=200.0) == ([c], None)
