"""Wide jobs on a GPU fleet: fleet's claim with holds and backfill vs first-fit without them.

A virtual-clock simulation of 16 hosts (4 x 8 H100 80 GiB, 4 x 4 A100 40 GiB, 4 x 2 RTX
3090 24 GiB, 4 CPU-only) running 600 jobs: 30% CPU jobs, the rest GPU jobs of which 20%
need 2-8 GPUs, with mixed gpu_names, min_compute_capability and shared or whole GPUs.
Every job has a timeout_s 1-2x its real duration (users overestimate). Jobs arrive over
the first hour, in a random order (a lab submits sweeps as it goes): a wide job arrives
while small ones run everywhere, which is when it starves without a hold. Both policies
make each host claim as a fleet worker does, hosts in turn whenever something ended:

- fleet: scheduler.reservation.choose over the host's admitted classes in fleet's queue
  order (priority, widest first, load order): the claim.lua rule, holds and backfill;
  less the classes a better-placed host could start right now (worker.preference's
  deferral: a job that runs on a 3090 is left to a 3090 box rather than taken by an
  H100 one, until a round of claims finds nothing else to start, which is its 0.5 s
  grace on this clock);
- fleet, no holds: the same without holds (the first class that fits, after deferral);
- first-fit: the first class in the same order that fits now, no hold, no deferral.

Reported: makespan against a lower bound (the largest of: the latest arrival plus its
job's duration; the longest job; the
core-seconds over all cores; for each set of GPUs some jobs are confined to, the
GPU-seconds of the jobs confined to it over its GPU count), and each wide job's wait
from the moment it first reached the head of a host's queue (the first class there it
could ever run, not fitting now) to its start, against the longest job's duration.

usage: python bench/simulate_gpus.py [--jobs 600] [--seed 1]
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import deque

from common import machine

from scheduler.manifest.model import JobSpec
from scheduler.matching import (ConstraintClass, EPSILON, choose_gpus, free_of, gpu_count, resources_reason,
                                static_reason)
from scheduler.queue_order import queue_rank, width
from scheduler.reservation import choose, plan_hold
from scheduler.resources import GpuInfo, HostResources
from worker.preference import better_placed

KINDS = {"h100": ("NVIDIA H100 80GB HBM3", 80.0, "9.0"), "a100": ("NVIDIA A100-SXM4-40GB", 40.0, "8.0"),
         "3090": ("NVIDIA GeForce RTX 3090", 24.0, "8.6")}


def fleet_hosts() -> list[HostResources]:
    hosts = []
    for kind, count, n, cores, ram in (("h100", 8, 4, 96, 1024), ("a100", 4, 4, 64, 512), ("3090", 2, 4, 24, 128)):
        name, vram, cc = KINDS[kind]
        for h in range(n):
            hosts.append(HostResources(f"{kind}-{h}", cores, float(ram), float(ram), tuple(
                GpuInfo(i, name, vram, vram, uuid=f"{kind}-{h}-{i}", compute_capability=cc) for i in range(count))))
    hosts += [HostResources(f"cpu-{h}", 64, 256.0, 256.0) for h in range(4)]
    return hosts


ARRIVALS_S = 3600.0


def make_jobs(n: int, seed: int) -> list[tuple[JobSpec, float, float]]:
    """(job, duration, arrival) each."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        s: dict = {"require_cuda": False, "min_vram_gib": 0, "min_ram_gib": 8, "min_cores": 4}
        if rng.random() < 0.3:
            s.update(min_ram_gib=rng.choice([4, 16, 64]), min_cores=rng.choice([2, 4, 8, 16]))
            duration = rng.uniform(60, 1200)
        elif rng.random() < 0.2:  # wide: 2-8 whole GPUs, mostly of the big kinds
            s.update(require_cuda=True, gpus=rng.choice([2, 2, 4, 4, 8]), min_ram_gib=64, min_cores=16)
            if s["gpus"] == 8 or rng.random() < 0.5:
                s["gpu_names"] = ["*H100*"]
            else:
                s["min_compute_capability"] = 8.0
            duration = rng.uniform(600, 2400)
        else:
            s.update(require_cuda=True, min_ram_gib=16, min_cores=4)
            kind = rng.random()
            if kind < 0.3:
                s["min_vram_gib"] = rng.choice([8, 12, 20])  # shares a card
            elif kind < 0.5:
                s["min_compute_capability"] = 8.6  # the 3090s and H100s
            elif kind < 0.6:
                s["gpu_names"] = ["*A100*"]
            duration = rng.uniform(120, 1200)
        s["timeout_s"] = round(duration * rng.uniform(1.0, 2.0))
        scheduling = {"name": f"j{i}", "priority": 0, "prefer_cuda": False, "allowed_hosts": [], "denied_hosts": [],
                      "after": [], "max_attempts": 3, "command": [], "entrypoint": "", "gpus": None, "gpu_names": [],
                      "min_compute_capability": 0, **s}
        jobs.append((JobSpec(identity={"model": "m", "seed": i}, scheduling=scheduling, index=i), duration,
                     rng.uniform(0, ARRIVALS_S)))
    return jobs


class Host:
    def __init__(self, res: HostResources):
        self.res = res
        self.ram = self.cores = 0.0
        self.vram: dict[str, float] = {}
        self.holders: list[tuple[tuple[int, ...], float, int]] = []  # (GPU indices, expected end, job) per running job
        self.held: str | None = None  # the class it holds for (the ledger's hold: field)

    def free(self):
        return free_of(self.res, self.ram, self.cores, self.vram)

    def gpu_ends(self) -> list[list[float]]:
        ends: list[list[float]] = [[] for _ in self.res.gpus]
        for gpus, end, _ in self.holders:
            for i in gpus:
                ends[i].append(end)
        return ends


def simulate(policy: str, hosts: list[HostResources], jobs: list[tuple[JobSpec, float, float]]) -> dict:
    states = [Host(h) for h in hosts]
    classes = [ConstraintClass.of(j, {}) for j, _, _ in jobs]
    rank = {i: (queue_rank(0, classes[i].min_vram_gib, width(classes[i])), jobs[i][2])
            for i in range(len(jobs))}  # load order is arrival order, as fleet's seq
    queues: dict[str, list] = {c.class_id: [] for c in classes}  # heaps of (rank, job)
    by_id = {c.class_id: c for c in classes}
    arrivals = deque(sorted(range(len(jobs)), key=lambda i: jobs[i][2]))
    admitted = [[cid for cid, c in by_id.items() if static_reason(c, h.res, True) is None] for h in states]
    running: list = []  # (end, job, host index, gpus)
    head_at: dict[int, float] = {}
    waits: dict[int, float] = {}
    now = 0.0
    left = len(jobs)
    fits_now: dict[tuple[int, str], bool] = {}  # (host, class) -> fits what the host has left; cleared on a change
    better: dict[tuple[str, int, int], bool] = {}  # worker.preference.better_placed, which never changes
    while left:
        while arrivals and jobs[arrivals[0]][2] <= now + EPSILON:
            i = arrivals.popleft()
            heapq.heappush(queues[classes[i].class_id], (rank[i], i))
        placed, defer = True, policy != "first-fit"
        while placed or defer:
            if not placed:  # a pass that deferred found nothing: the deferrals' grace has passed
                defer = False
            placed = False
            for hi, h in enumerate(states):
                ordered = sorted((cid for cid in admitted[hi] if queues[cid]), key=lambda cid: queues[cid][0])
                if not ordered:
                    continue
                free = h.free()
                pairs = [(by_id[cid], by_id[cid].timeout_s, 0) for cid in ordered]  # one priority here
                if defer:
                    pairs = [(c, t, p) for c, t, p in pairs if not _left_to_another(c, hi, states, fits_now, better)]
                if policy == "fleet":
                    cls, gpus, hold = choose(pairs, free, h.res.ram_total_gib, h.res.cores, h.gpu_ends(), now, h.held)
                    h.held = hold.class_id if hold else None
                else:  # first fit, with or without deferral
                    cls, gpus = _first_fit(pairs, free), None
                    if cls is not None:
                        gpus = choose_gpus(cls, free)
                # When each wide job first reached the head of a host it could run, not fitting.
                for c, _, _ in pairs:
                    if c is cls:
                        break
                    if plan_hold(c, free, h.res.ram_total_gib, h.res.cores, h.gpu_ends(), now) is not None:
                        head_at.setdefault(queues[c.class_id][0][1], now)
                        break
                if cls is None:
                    continue
                _, i = heapq.heappop(queues[cls.class_id])
                duration = jobs[i][1]
                h.ram += cls.min_ram_gib
                h.cores += cls.min_cores
                for g in gpus:
                    key = h.res.gpus[g].ledger_key
                    h.vram[key] = h.vram.get(key, 0.0) + (cls.min_vram_gib or h.res.gpus[g].vram_total_gib)
                if gpus:
                    h.holders.append((gpus, now + cls.timeout_s, i))
                if gpu_count(cls, True) > 1:
                    waits[i] = now - head_at.get(i, now)
                heapq.heappush(running, (now + duration, i, hi, gpus))
                fits_now.clear()
                placed = True
        if not running and not arrivals:
            raise SystemExit(f"{policy}: {left} jobs can never run on this fleet")
        now = min(([running[0][0]] if running else []) + ([jobs[arrivals[0]][2]] if arrivals else []))
        while running and running[0][0] <= now + EPSILON:
            _, i, hi, gpus = heapq.heappop(running)
            cls, h = classes[i], states[hi]
            h.ram -= cls.min_ram_gib
            h.cores -= cls.min_cores
            for g in gpus:
                key = h.res.gpus[g].ledger_key
                h.vram[key] -= cls.min_vram_gib or h.res.gpus[g].vram_total_gib
            h.holders = [x for x in h.holders if x[2] != i]
            fits_now.clear()
            left -= 1
    return {"makespan": now, "worst_wide_wait": max(waits.values(), default=0.0),
            "mean_wide_wait": sum(waits.values()) / max(1, len(waits)), "wide": len(waits)}


def _left_to_another(cls: ConstraintClass, me: int, states: list[Host], fits_now: dict, better: dict) -> bool:
    """Whether a better-placed host (worker.preference.better_placed) could start ``cls`` now."""
    for k, other in enumerate(states):
        if k == me:
            continue
        key = (cls.class_id, me, k)
        if key not in better:
            better[key] = static_reason(cls, other.res, True) is None and better_placed(cls, states[me].res,
                                                                                        other.res, {})
        if not better[key]:
            continue
        if (k, cls.class_id) not in fits_now:
            fits_now[(k, cls.class_id)] = _first_fit([(cls, 0)], other.free()) is not None
        if fits_now[(k, cls.class_id)]:
            return True
    return False


def _first_fit(pairs, free):
    return next((cls for cls, *_ in pairs if resources_reason(cls, free) is None), None)


def lower_bound(hosts: list[HostResources], jobs: list[tuple[JobSpec, float, float]]) -> tuple[float, dict]:
    """See the module docstring: the largest of the bounds, and each."""
    classes = [ConstraintClass.of(j, {}) for j, _, _ in jobs]
    bounds = {"arrival + duration": max(a + d for _, d, a in jobs), "longest job": max(d for _, d, _ in jobs),
              "core-seconds": sum(c.min_cores * d for c, (_, d, _) in zip(classes, jobs)) / sum(h.cores for h in hosts)}
    # The GPUs each GPU job could ever use (a host must have enough usable ones).
    sets = []
    for c in classes:
        if not c.needs_cuda:
            sets.append(frozenset())
            continue
        usable = set()
        for h in hosts:
            if static_reason(c, h, True) is None:
                free = free_of(h)
                mine = [g.ledger_key for g in h.gpus if c.whole_gpus or g.vram_total_gib + EPSILON >= c.min_vram_gib]
                if choose_gpus(c, free) is not None:
                    usable.update(mine)
        sets.append(frozenset(usable))
    worst = 0.0
    for s in set(sets):
        if not s:
            continue
        work = sum(gpu_count(c, True) * d * (1.0 if c.whole_gpus else c.min_vram_gib / 80.0)
                   for c, u, (_, d, _) in zip(classes, sets, jobs) if u and u <= s)
        worst = max(worst, work / len(s))
    bounds["GPU-seconds"] = worst
    return max(bounds.values()), bounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    hosts, jobs = fleet_hosts(), make_jobs(args.jobs, args.seed)
    bound, bounds = lower_bound(hosts, jobs)
    longest = bounds["longest job"]
    print(f"wide jobs on a GPU fleet: {len(hosts)} hosts, {len(jobs)} jobs, seed {args.seed} ({machine()})")
    print(f"  lower bound on makespan: {bound:8.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in bounds.items()) + ")")
    for policy in ("fleet", "fleet, no holds", "first-fit"):
        r = simulate(policy, hosts, jobs)
        print(f"  {policy:<15} makespan {r['makespan']:8.0f} s = {r['makespan'] / bound:.3f}x bound; "
              f"{r['wide']} wide jobs, wait at the head: worst {r['worst_wide_wait']:.0f} s "
              f"({r['worst_wide_wait'] / longest:.2f}x the longest job), mean {r['mean_wide_wait']:.0f} s")
    print("  targets: fleet makespan <= 1.10x bound; worst wide wait <= the longest job")


if __name__ == "__main__":
    main()
