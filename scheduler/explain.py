"""Why a job is where it is: the text behind ``fleet explain``.

For a pending job every live worker is asked the pure matching rule with what its
host has left right now (the ledger), so the first failing constraint is named
per worker, e.g. ``gpu-24: min_vram_gib 40 > free 23.5``; the same rule the claim
uses, so explain can't disagree with what workers do. Pure: the store reads what
it needs (:class:`ExplainView`) and :func:`explanation` decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dependencies import DEPENDENCY_FIELDS, edge_met, parents_of, waiting_words
from .manifest.fields import RETRY_DELAY_CAP_S, RETRY_DELAY_DEFAULT_S
from .manifest.model import HostSpec, JobSpec
from .matching import ConstraintClass, Free, host_rule_reason, job_host_reason, job_reason, ledger_free, static_reason
from .reservation import Hold, choose, gpu_ends_of, hold_words, ledger_held, ledger_holders
from .states import JobState
from .store.queries import JobRecord
from .store.views import ExplainView
from .store.workers import WorkerInfo
from .table import age, span


@dataclass
class Explanation:
    job: JobRecord
    summary: str
    per_worker: list[tuple[str, str]] = field(default_factory=list)  # (worker@host, reason or "can run it")
    runnable_by: list[str] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return explanation_lines(self.to_json())

    def to_json(self) -> dict:
        return {"job_id": self.job.job_id, "name": self.job.name, "state": self.job.state.value,
                "summary": self.summary, "workers": [{"worker": w, "reason": r} for w, r in self.per_worker],
                "runnable_by": self.runnable_by, "waiting_for": self.waiting_for}


def explanation_lines(doc: dict) -> list[str]:
    """`fleet explain`'s text from its JSON document (:meth:`Explanation.to_json`, what
    ``Client.explain`` returns)."""
    out = [f"{doc['name']} ({doc['job_id']}): {doc['state']}. {doc['summary']}"]
    out += [f"  {w['worker']}: {w['reason']}" for w in doc["workers"]]
    out += [f"  waiting: {w}" for w in doc["waiting_for"]]
    return out


def explanation(view: ExplainView) -> Explanation:
    """Why ``view.job`` is where it is; pure, over what :meth:`Store.explain_view` read."""
    job = view.job
    spec = JobSpec.from_flat(job.spec)
    if job.state is JobState.RUNNING:
        return Explanation(job, f"Running on {job.host} (worker {job.worker}), attempt {job.attempts}.")
    if job.state is JobState.FINISHED:
        return Explanation(job, f"Finished on {job.host} after {job.attempts} attempt(s); a reload never reruns it.")
    if job.state in (JobState.FAILED, JobState.CANCELED):
        last = view.attempts[-1] if view.attempts else {}
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
    if job.retry_at and job.retry_at > view.now and not job.indexed:  # it ran: its parents let it
        last = view.attempts[-1] if view.attempts else {}
        base = job.spec.get("retry_delay_s")
        return Explanation(job, f"Waiting out its retry delay: attempt {last.get('attempt', job.attempts)} ended "
                                f"{last.get('outcome') or 'badly'}; it may be claimed again in "
                                f"{span(job.retry_at - view.now)} (retry_delay_s "
                                f"{base if base is not None else f'{RETRY_DELAY_DEFAULT_S:g} (default)'}, doubled per "
                                f"failed attempt up to {span(RETRY_DELAY_CAP_S)}); `fleet hold` then `fleet release` "
                                f"it to skip the wait.")
    parents = parents_of(job.spec)
    if parents and not job.indexed:
        waiting = [f"{name} ({state}) {waiting_words(parents.get(name, 'after'))}" for name, state in view.parents
                   if not edge_met(parents.get(name, "after"), state)]
        edges = "; ".join(f"{field} = {names}" for field in DEPENDENCY_FIELDS
                          if (names := [n for n, f in parents.items() if f == field]))
        return Explanation(job, f"Waiting for {', '.join(waiting) or 'its dependencies'} ({edges}).")
    live = [w for w in view.workers if w.live]
    if not live:
        return _with_no_live_worker(job, spec, view.workers, view.hosts, view.now)
    return _per_live_worker(view, spec, live)


def _per_live_worker(view: ExplainView, spec: JobSpec, live: list[WorkerInfo]) -> Explanation:
    """A queued pending job against every live worker: what its host has left now (the ledger)
    and what it could offer when idle, so "busy" is told apart from "never"."""
    job, hosts = view.job, view.hosts
    result = Explanation(job, "")
    idle_capacity = []
    own = ConstraintClass.of(spec, hosts)
    for w in live:
        who = f"{w.name}@{w.host.hostname}"
        ledger = view.ledgers.get(w.host.hostname, {})
        free = ledger_free(w.host, ledger)
        reason = job_reason(spec, hosts.get(w.host.hostname), w.host, free)
        never = job_reason(spec, hosts.get(w.host.hostname), w.host, ledger_free(w.host, {}))
        held = _hold_on(view, w, own, ledger, free) if never is None else None
        if reason is None and held and held[0].class_id != own.class_id:
            hold, held_name, fits_beside = held
            if not fits_beside and w.state not in ("paused", "draining"):  # it fits, on what a wider job waits for
                result.per_worker.append((who, f"{hold_words(hold, held_name, len(w.host.gpus))}; this job starts "
                                               f"there only if its timeout_s ends before that job could start"))
                idle_capacity.append(w.name)
                continue
        elif reason is not None and held and held[0].class_id == own.class_id and len(held[0].gpus) > 1:
            hold = held[0]  # for this job's class: for this job, or for the first of its class ahead of it
            whom = f"the first of the {view.ahead} job(s) of its constraints ahead of it" if view.ahead else "it"
            reason += f"; {_held_for(hold, whom, len(w.host.gpus), view.now)}"
        if w.state == "paused":
            result.per_worker.append((who, f"paused: {w.note}" if never is None else f"paused; and {never}"))
            if never is None:
                idle_capacity.append(w.name)
        elif w.state == "draining":  # `fleet drain` or a warm stop: it claims nothing more
            result.per_worker.append((who, f"draining, claims no more (`fleet drain --undo {w.name}`)" +
                                      ("" if never is None else f"; and {never}")))
        elif reason is None and _avoids(view, w, live):
            result.per_worker.append((who, f"can run it ({w.state}), but its last attempt failed here: another "
                                           f"idle host that can run it goes first, for "
                                           f"{span(job.avoid_until - view.now)} more at most"))
            result.runnable_by.append(w.name)
        elif reason is None:
            result.per_worker.append((who, f"can run it ({w.state})"))
            result.runnable_by.append(w.name)
        elif never is None:
            result.per_worker.append((who, f"busy: {reason}"))
            idle_capacity.append(w.name)
        else:
            result.per_worker.append((who, reason))
    if result.runnable_by:
        if view.ahead:
            result.waiting_for.append(f"{view.ahead} job(s) of the same constraints ahead of it (priority, then FIFO)")
        busy = [n for n in result.runnable_by if next(w for w in live if w.name == n).state != "idle"]
        if len(busy) == len(result.runnable_by):
            result.waiting_for.append("every worker that can run it is busy")
        result.summary = f"{len(result.runnable_by)} live worker(s) can run it."
    elif idle_capacity:
        result.summary = "Some workers could run it once their host frees resources."
    else:
        result.summary = "No live worker can ever run it as the fleet is now; it waits for a host that satisfies it."
    return result


def _avoids(view: ExplainView, w: WorkerInfo, live: list[WorkerInfo]) -> bool:
    """Whether ``w``'s claim passes this job over for now (claim.lua avoided): its last attempt
    failed or was lost on ``w``'s host, the window is open, and an idle worker on another host
    could run it."""
    job = view.job
    if job.avoid_host != w.host.hostname or job.avoid_until <= view.now:
        return False
    spec = JobSpec.from_flat(job.spec)
    return any(o.state == "idle" and o.host.hostname != w.host.hostname and
               job_reason(spec, view.hosts.get(o.host.hostname), o.host,
                          ledger_free(o.host, view.ledgers.get(o.host.hostname, {}))) is None for o in live)


def _hold_on(view: ExplainView, w: WorkerInfo, own: ConstraintClass, ledger: dict, free: Free
             ) -> tuple[Hold, str, bool] | None:
    """What ``w``'s host holds its GPUs for as its claim would see it (the classes ahead of this
    job, then this job's), the held job's name, and whether this job may start beside the hold;
    None when the host holds for nothing."""
    known = w.host.hostname in view.hosts
    ahead = [(cls, name, level) for cls, name, level in view.ahead_classes
             if static_reason(cls, w.host, known) is None]
    entries = [(cls, cls.timeout_s, level) for cls, _, level in ahead] + [(own, own.timeout_s, view.level)]
    ends = gpu_ends_of([g.ledger_key for g in w.host.gpus], ledger_holders(ledger))
    chosen, _, hold = choose(entries, free, w.host.ram_total_gib, w.host.cores, ends, view.now, ledger_held(ledger))
    if hold is None:
        return None
    name = next((n for cls, n, _ in ahead if cls.class_id == hold.class_id), view.job.name)
    return hold, name, chosen is not None and chosen.class_id == own.class_id


def _held_for(hold: Hold, held_name: str, gpus_total: int, now: float) -> str:
    """What the held job waits for, in words: "the host holds for it: 5 of its 8 GPUs kept idle
    (of 8), the other 3 free within 20m at the latest (their jobs' timeout_s)"."""
    rest = len(hold.gpus) - hold.idle
    when = ("as soon as their jobs end (one has no timeout_s)" if hold.start_at <= now + 1e-6
            else f"within {age(now, hold.start_at)} at the latest (their jobs' timeout_s)")
    return (f"the host holds for {held_name}: {hold.idle} of its {len(hold.gpus)} GPUs kept idle "
            f"(of {gpus_total}), the other {rest} free {when}")


def _with_no_live_worker(job: JobRecord, spec: JobSpec, workers: list[WorkerInfo],
                         hosts: dict[str, HostSpec], now: float) -> Explanation:
    """No worker is alive (burst workers that exited, a fleet being restarted): the job is judged,
    as `condor_q -better-analyze` does, against the workers seen in the last day, at their whole
    capacity, and against the declared hosts no worker was seen on, by their rules alone."""
    result = Explanation(job, "")
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
