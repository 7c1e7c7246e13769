"""Why a job is where it is: the text behind ``fleet explain``.

For a pending job every live worker is asked the pure matching rule with what its
host has left right now (the ledger), so the first failing constraint is named
per worker, e.g. ``gpu-24: min_vram_gib 40 > free 23.5``; the same rule the claim
uses, so explain can't disagree with what workers do.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .keys import Keys
from .manifest.model import HostSpec, JobSpec
from .matching import host_rule_reason, job_host_reason, job_reason, ledger_free
from .states import JobState
from .store.queries import JobRecord
from .store.workers import WorkerInfo
from .table import age


@dataclass
class Explanation:
    job: JobRecord
    summary: str
    per_worker: list[tuple[str, str]] = field(default_factory=list)  # (worker@host, reason or "can run it")
    runnable_by: list[str] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.job.name} ({self.job.job_id}): {self.job.state.value}. {self.summary}"]
        for who, why in self.per_worker:
            out.append(f"  {who}: {why}")
        out += [f"  waiting: {w}" for w in self.waiting_for]
        return out

    def to_json(self) -> dict:
        return {"job_id": self.job.job_id, "name": self.job.name, "state": self.job.state.value,
                "summary": self.summary, "workers": [{"worker": w, "reason": r} for w, r in self.per_worker],
                "runnable_by": self.runnable_by, "waiting_for": self.waiting_for}


def explain(redis, keys: Keys, job: JobRecord, workers: list[WorkerInfo], attempts: list[dict]) -> Explanation:
    spec = JobSpec.from_flat(job.spec)
    if job.state is JobState.RUNNING:
        return Explanation(job, f"Running on {job.host} (worker {job.worker}), attempt {job.attempts}.")
    if job.state is JobState.FINISHED:
        return Explanation(job, f"Finished on {job.host} after {job.attempts} attempt(s); a reload never reruns it.")
    if job.state in (JobState.FAILED, JobState.CANCELED):
        last = attempts[-1] if attempts else {}
        why = last.get("reason") or last.get("outcome") or "no attempt recorded"
        return Explanation(job, f"Last attempt: {why}. `fleet retry {job.name}` makes it pending again.")
    if job.state is JobState.BLOCKED:
        return Explanation(job, f"{(job.reason or 'blocked by a dependency').capitalize()}; `fleet retry` that job "
                                f"(after fixing it) to unblock this one.")
    if job.state is not JobState.PENDING:
        return Explanation(job, f"Not claimable while {job.state.value}; `fleet release {job.name}` lets it run.")
    if not job.in_manifest:
        return Explanation(job, "Orphaned: the manifest no longer lists it, so it will not start; add it back or "
                                "cancel it.")
    if job.spec.get("after") and not job.indexed:
        parents = [m.decode() for m in redis.smembers(keys.deps_prefix + job.job_id)]
        pipe = redis.pipeline(transaction=False)
        for parent in parents:
            pipe.hmget(keys.job(parent), "name", "state")
        waiting = [f"{n.decode()} ({st.decode()})" for n, st in pipe.execute()
                   if n and st and st != JobState.FINISHED.value.encode()]
        return Explanation(job, f"Waiting for {', '.join(waiting) or 'its dependencies'} to finish (after = "
                                f"{job.spec['after']}).")
    live = [w for w in workers if w.live]
    hosts = {k.decode(): HostSpec.from_dict(json.loads(v)) for k, v in redis.hgetall(keys.hosts).items()}
    if not live:
        return _with_no_live_worker(job, spec, workers, hosts)
    pipe = redis.pipeline(transaction=False)
    for w in live:
        pipe.hgetall(keys.ledger(w.host.hostname))
    ledgers = [{k.decode(): float(v) for k, v in raw.items()} for raw in pipe.execute()]
    result = Explanation(job, "")
    idle_capacity = []
    for w, ledger in zip(live, ledgers):
        who = f"{w.name}@{w.host.hostname}"
        reason = job_reason(spec, hosts.get(w.host.hostname), w.host, ledger_free(w.host, ledger))
        never = job_reason(spec, hosts.get(w.host.hostname), w.host, ledger_free(w.host, {}))
        if w.state == "paused":
            result.per_worker.append((who, f"paused: {w.note}" if never is None else f"paused; and {never}"))
            if never is None:
                idle_capacity.append(w.name)
        elif w.state == "draining":  # `fleet drain` or a warm stop: it claims nothing more
            result.per_worker.append((who, f"draining, claims no more (`fleet drain --undo {w.name}`)" +
                                      ("" if never is None else f"; and {never}")))
        elif reason is None:
            result.per_worker.append((who, f"can run it ({w.state})"))
            result.runnable_by.append(w.name)
        elif never is None:
            result.per_worker.append((who, f"busy: {reason}"))
            idle_capacity.append(w.name)
        else:
            result.per_worker.append((who, reason))
    if result.runnable_by:
        ahead = redis.zrank(keys.pending(job.class_id), job.job_id)
        if ahead:
            result.waiting_for.append(f"{ahead} job(s) of the same constraints ahead of it (priority, then FIFO)")
        busy = [n for n in result.runnable_by if next(w for w in live if w.name == n).state != "idle"]
        if len(busy) == len(result.runnable_by):
            result.waiting_for.append("every worker that can run it is busy")
        result.summary = f"{len(result.runnable_by)} live worker(s) can run it."
    elif idle_capacity:
        result.summary = "Some workers could run it once their host frees resources."
    else:
        result.summary = "No live worker can ever run it as the fleet is now; it waits for a host that satisfies it."
    return result


def _with_no_live_worker(job: JobRecord, spec: JobSpec, workers: list[WorkerInfo],
                         hosts: dict[str, HostSpec]) -> Explanation:
    """No worker is alive (burst workers that exited, a fleet being restarted): the job is judged,
    as `condor_q -better-analyze` does, against the workers seen in the last day, at their whole
    capacity, and against the declared hosts no worker was seen on, by their rules alone."""
    result = Explanation(job, "")
    now = time.time()
    seen_hosts = set()
    for w in workers:
        seen_hosts.add(w.host.hostname)
        reason = job_reason(spec, hosts.get(w.host.hostname), w.host, ledger_free(w.host, {}))
        result.per_worker.append((f"{w.name}@{w.host.hostname} ({w.state}, last seen {age(w.heartbeat, now)} ago)",
                                  reason or "could run it"))
        if reason is None:
            result.runnable_by.append(w.name)
    for name, host in sorted(hosts.items()):
        if name in seen_hosts:
            continue
        reason = (host_rule_reason(host, spec.model, spec.name) or
                  job_host_reason(spec.scheduling["allowed_hosts"], spec.scheduling["denied_hosts"], name))
        result.per_worker.append((f"host {name} (declared, no worker seen)",
                                  reason or "its rules admit it; its resources are known once a worker runs there"))
    if result.runnable_by:
        result.summary = (f"No live worker is registered; {len(result.runnable_by)} seen recently could run it: "
                          f"start `fleet worker` on their hosts.")
    else:
        result.summary = "No live worker is registered, and none seen recently could run it; start `fleet worker` " \
                         "on a host that satisfies it."
    return result
