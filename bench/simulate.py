"""Scheduling quality: fleet's placement policy vs a lower bound and plain FIFO first-fit.

A virtual-clock simulation of a heterogeneous fleet (12 hosts) running 500 jobs of
mixed VRAM/RAM/core needs and durations. Both policies use fleet's own pure rule
(scheduler.matching) for "may this host run this job now"; they differ only in
which job and host go together:

- fleet: jobs in fleet's queue order (scheduler.queue_order: priority, then the
  biggest GPU need, then load order); each goes to the best-placed host that fits it now (worker.preference.better_placed: host priority, then the smallest
  GPU that fits, then CUDA for prefer_cuda), on that host's smallest fitting GPU;
  jobs that fit nowhere wait without blocking others (what claims do).
- fleet, FIFO within a priority: the same, but equal priorities in load order
  (fleet's order before queue_order), to show what the order itself is worth.
- FIFO first-fit: jobs in load order, each on the first host (fixed order) and the
  first GPU where it fits.

Lower bound: the largest of the longest job, core-seconds over all cores, and per
class of GPUs at least T GiB big (for each GPU size T), over the jobs only that
class can hold: their VRAM-seconds over its VRAM, and the run time of those that
need more than half of its biggest GPU over its GPU count (no two of them can
share a GPU, so at most one runs per GPU at a time).
Also reported: stranded GPU time, the GPU-seconds a GPU sat wholly idle while a
waiting GPU job's VRAM and RAM would fit there. (A job that fits a host outright is
always placed at once, by both policies; what strands a GPU is the host's cores,
taken by the jobs already there.)

usage: python bench/simulate.py [--jobs 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import heapq
import random
from dataclasses import dataclass, field

from common import machine

from scheduler.manifest.model import HostSpec, JobSpec
from scheduler.matching import ConstraintClass, best_fit_gpu, free_of, resources_reason, static_reason
from scheduler.queue_order import queue_rank, width
from scheduler.resources import GpuInfo, HostResources
from worker.preference import better_placed

EPS = 1e-9


def fleet_hosts() -> list[tuple[HostResources, HostSpec]]:
    def host(name, cores, ram, gpus=(), priority=0):
        infos = tuple(GpuInfo(i, f"g{v}", float(v), float(v), uuid=f"{name}-{i}") for i, v in enumerate(gpus))
        return HostResources(name, cores, float(ram), float(ram), infos), HostSpec(name, priority=priority)
    return [host("a100-1", 32, 256, (80, 80), 10), host("a100-2", 32, 256, (80, 80), 10),
            host("l40-1", 32, 192, (48, 48, 48, 48), 8), host("rtx-1", 16, 64, (24,), 5), host("rtx-2", 16, 64, (24,), 5),
            host("rtx-3", 16, 64, (24,), 5), host("cpu-1", 64, 512, (), 3), host("cpu-2", 64, 512, (), 3),
            host("cpu-3", 32, 128, (), 3), host("cpu-4", 32, 128, (), 3), host("laptop-1", 4, 16),
            host("laptop-2", 4, 16)]


def make_jobs(n: int, seed: int) -> list[tuple[JobSpec, float]]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.15:
            s = dict(require_cuda=True, min_vram_gib=rng.choice([60, 70, 78]), min_ram_gib=64, min_cores=8)
            duration = rng.uniform(600, 1800)
        elif kind < 0.45:
            s = dict(require_cuda=True, min_vram_gib=rng.choice([8, 12, 16, 20]), min_ram_gib=16, min_cores=4)
            duration = rng.uniform(120, 900)
        elif kind < 0.55:
            s = dict(require_cuda=True, min_vram_gib=rng.choice([30, 40]), min_ram_gib=32, min_cores=4)
            duration = rng.uniform(300, 1200)
        else:
            s = dict(require_cuda=False, min_vram_gib=0, min_ram_gib=rng.choice([2, 8, 32, 96]),
                     min_cores=rng.choice([1, 2, 4, 8, 16]))
            duration = rng.uniform(60, 1200)
        scheduling = {"name": f"j{i}", "priority": rng.choice([0, 0, 0, 5, 10]), "prefer_cuda": False,
                      "allowed_hosts": [], "denied_hosts": [], "after": [], "max_attempts": 3, "timeout_s": 0,
                      "command": [], "entrypoint": "", **s}
        jobs.append((JobSpec(identity={"model": "m", "seed": i}, scheduling=scheduling, index=i), duration))
    return jobs


@dataclass
class HostState:
    res: HostResources
    spec: HostSpec
    ram: float = 0.0
    cores: float = 0.0
    vram: dict[int, float] = field(default_factory=dict)

    def free(self):
        return free_of(self.res, self.ram, self.cores, {g.ledger_key: self.vram.get(i, 0.0)
                                                        for i, g in enumerate(self.res.gpus)})


def fits(cls: ConstraintClass, h: HostState) -> bool:
    return (static_reason(cls, h.res, True) is None
            and resources_reason(cls, h.free()) is None)


def gpu_for(cls: ConstraintClass, h: HostState, policy: str) -> int | None:
    if not h.res.gpus or not (cls.require_cuda or cls.min_vram_gib > 0):
        return None
    free = h.free().gpu_vram_gib
    if policy != "fifo-first-fit":
        return best_fit_gpu(cls.min_vram_gib, free)
    return next(i for i, f in enumerate(free) if f + EPS >= cls.min_vram_gib)


def simulate(policy: str, hosts, jobs) -> dict:
    states = [HostState(r, s) for r, s in hosts]
    specs = {s.name: s for _, s in hosts}
    classes = [ConstraintClass.of(j, specs) for j, _ in jobs]
    order = list(range(len(jobs)))
    if policy == "fleet":
        order.sort(key=lambda i: (queue_rank(jobs[i][0].priority, classes[i].min_vram_gib, width(classes[i])), i))
    elif policy == "fleet-fifo":
        order.sort(key=lambda i: (-jobs[i][0].priority, i))
    pending = order[:]
    running: list[tuple[float, int, int, int | None]] = []  # (end, job, host, gpu)
    now, gpu_idle_waiting = 0.0, 0.0
    while pending or running:
        placed = True
        while placed:
            placed = False
            for i in list(pending):
                cls = classes[i]
                candidates = [h for h in states if fits(cls, h)]
                if not candidates:
                    continue
                if policy != "fifo-first-fit":
                    best = candidates[0]
                    for other in candidates[1:]:
                        if better_placed(cls, best.res, other.res, specs):
                            best = other
                else:
                    best = candidates[0]
                gpu = gpu_for(cls, best, policy)
                best.ram += cls.min_ram_gib
                best.cores += cls.min_cores
                if gpu is not None:
                    best.vram[gpu] = best.vram.get(gpu, 0.0) + cls.min_vram_gib
                heapq.heappush(running, (now + jobs[i][1], i, states.index(best), gpu))
                pending.remove(i)
                placed = True
                if policy == "fifo-first-fit":
                    break  # first-fit re-scans from the head after each placement
        if not running:
            raise SystemExit(f"{policy}: {len(pending)} jobs can never run on this fleet")
        end = running[0][0]
        # Stranded GPU time: a whole GPU idle while a waiting GPU job's VRAM and RAM would fit there.
        for h in states:
            for gi, g in enumerate(h.res.gpus):
                if h.vram.get(gi, 0.0) < EPS and any(classes[i].require_cuda and classes[i].min_vram_gib <= g.vram_total_gib
                                                      and h.ram + classes[i].min_ram_gib <= h.res.ram_total_gib
                                                      for i in pending):
                    gpu_idle_waiting += end - now
        now = end
        while running and running[0][0] <= now + EPS:
            _, i, hi, gpu = heapq.heappop(running)
            cls, h = classes[i], states[hi]
            h.ram -= cls.min_ram_gib
            h.cores -= cls.min_cores
            if gpu is not None:
                h.vram[gpu] -= cls.min_vram_gib
    return {"makespan": now, "gpu_idle_waiting": gpu_idle_waiting}


def lower_bounds(hosts, jobs) -> dict[str, float]:
    """Each lower bound on the makespan (see the module docstring); the largest is the bound."""
    gpus = [g.vram_total_gib for h, _ in hosts for g in h.gpus]
    bounds = {"longest job": max(d for _, d in jobs), "VRAM-seconds": 0.0, "GPU slots": 0.0}
    for threshold in sorted(set(gpus)):
        # Jobs that need a GPU of at least `threshold` GiB can only use those GPUs.
        smaller = max([g for g in gpus if g < threshold], default=0)
        only_here = [(j.scheduling["min_vram_gib"], d) for j, d in jobs
                     if j.scheduling["require_cuda"] and j.scheduling["min_vram_gib"] > smaller]
        here = [g for g in gpus if g >= threshold]
        bounds["VRAM-seconds"] = max(bounds["VRAM-seconds"], sum(v * d for v, d in only_here) / sum(here))
        bounds["GPU slots"] = max(bounds["GPU slots"],
                                  sum(d for v, d in only_here if v > max(here) / 2) / len(here))
    cpu_work = sum(j.scheduling["min_cores"] * d for j, d in jobs)
    bounds["core-seconds"] = cpu_work / sum(h.cores for h, _ in hosts)
    return bounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    hosts, jobs = fleet_hosts(), make_jobs(args.jobs, args.seed)
    bounds = lower_bounds(hosts, jobs)
    bound = max(bounds.values())
    print(f"scheduling simulation: {len(hosts)} hosts, {len(jobs)} jobs, seed {args.seed} ({machine()})")
    print(f"  lower bound on makespan: {bound:8.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in bounds.items()) + ")")
    results = {}
    for policy in ("fleet", "fleet-fifo", "fifo-first-fit"):
        r = results[policy] = simulate(policy, hosts, jobs)
        print(f"  {policy:<15} makespan {r['makespan']:8.0f} s = {r['makespan'] / bound:.3f}x bound; "
              f"stranded GPU time: {r['gpu_idle_waiting']:.0f} GPU-s")
    for baseline in ("fleet-fifo", "fifo-first-fit"):
        print(f"  fleet / {baseline} makespan: {results['fleet']['makespan'] / results[baseline]['makespan']:.3f}")


if __name__ == "__main__":
    main()
