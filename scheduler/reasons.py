"""The REASON column: why a job is where it is, in one short phrase, as squeue's NODELIST(REASON).

``fleet explain`` says it in full per worker (scheduler/explain.py); a table of a hundred jobs
needs one phrase each, from the same matching rule (scheduler/matching.py) over the same reads
(live workers, what their hosts have left, the job's place in its queue), so the two never
disagree. Pure: the store reads a :class:`scheduler.store.views.JobsView` and this decides.

Phrases (the README's output contract lists them):
  pending:  ``Orphaned``, ``Dependency``, ``Retry delay (8s)`` (a failed attempt's retry_delay_s
            has that long to run), ``No live worker``, ``No host fits: <constraint>``
            (no live worker could run it even idle), ``Draining`` / ``Paused`` (only draining or
            paused workers could), ``Resources (busy)`` (capable hosts are busy),
            ``Priority`` (a capable host is free; jobs of its constraints are ahead of it),
            ``Starting`` (a capable host is free and it is next: a worker is about to claim it)
  held: ``Held``; blocked: ``Dependency failed``; running: ``Draining`` when its worker drains;
  failed, canceled: the last attempt's reason as recorded; finished: none.
"""

from __future__ import annotations

from collections import Counter

from .manifest.model import HostSpec
from .matching import ConstraintClass, class_reason, free_of, job_host_reason, ledger_free, static_reason
from .resources import HostResources
from .dependencies import parents_of
from .states import JobState
from .store.queries import JobRecord
from .store.views import JobsView
from .store.workers import WorkerInfo
from .table import span

MAX_REASON = 60  # a recorded failure reason is cut to this in the column (`fleet job` has it whole)


def reason_phrase(job: JobRecord, view: JobsView) -> str | None:
    """The REASON of ``job`` (see the module's list), or None where there is nothing to say."""
    state = job.state
    if state is JobState.RUNNING:
        worker = view.worker_named(job.worker)
        return "Draining" if worker is not None and worker.state == "draining" else None
    if state is JobState.HELD:
        return "Held"
    if state is JobState.BLOCKED:
        return "Dependency failed"
    if state in (JobState.FAILED, JobState.CANCELED):
        return _cut(job.reason) if job.reason else None
    if state is not JobState.PENDING:
        return None
    if not job.in_manifest:
        return "Orphaned"
    if job.retry_at and job.retry_at > view.now and not job.indexed:  # it ran: its parents let it
        return f"Retry delay ({span(job.retry_at - view.now)})"
    if parents_of(job.spec) and not job.indexed:
        return "Dependency"
    cls = view.classes.get(job.class_id)
    if cls is None:
        return None  # its class record is damaged: `fleet explain` says so
    return _pending_reason(cls, view, view.ahead.get(job.job_id) or 0)


def _pending_reason(cls: ConstraintClass, view: JobsView, ahead: int) -> str:
    live = [w for w in view.workers if w.live]
    capable = [w for w in live if class_reason(cls, w.host, w.host.hostname in view.hosts, free_of(w.host)) is None]
    if not capable:
        return nobody_can_run(cls, live, view.hosts) or "No host fits"  # (never None here: none can run it)
    claiming = [w for w in capable if w.state not in ("draining", "paused")]
    if not claiming:
        return "Paused" if any(w.state == "paused" for w in capable) else "Draining"
    for w in claiming:
        free = ledger_free(w.host, view.ledgers.get(w.host.hostname, {}))
        if class_reason(cls, w.host, w.host.hostname in view.hosts, free) is None:
            return "Priority" if ahead else "Starting"
    return "Resources (busy)"


def nobody_can_run(cls: ConstraintClass, live: list[WorkerInfo], hosts: dict[str, HostSpec]) -> str | None:
    """``No live worker``, or ``No host fits: <constraint>`` when none of the ``live`` workers
    could run ``cls`` even idle (the constraint of the nearest miss, the commonest among equally
    near ones), else None. `fleet status`
    groups what nobody can run by this phrase: one block per unmet need."""
    if not live:
        return "No live worker"
    refusals: Counter = Counter()
    for w in live:
        never = class_reason(cls, w.host, w.host.hostname in hosts, free_of(w.host))
        if never is None:
            return None
        refusals[(_kind_of_refusal(cls, w.host, hosts), short_constraint(never))] += 1
    # The nearest miss names the need: a host short of VRAM says more than one a rule keeps out.
    nearest = min(kind for kind, _ in refusals)
    phrase = max((n, -i, text) for i, ((kind, text), n) in enumerate(refusals.items()) if kind == nearest)[2]
    return f"No host fits: {phrase}"


def _kind_of_refusal(cls: ConstraintClass, host: HostResources, hosts: dict[str, HostSpec]) -> int:
    """0: the host lacks resources; 1: it lacks the kind of hardware (CUDA, the GPU model);
    2: a rule keeps the job out (the host's allow/deny table, the job's host lists)."""
    name = host.hostname
    if name in cls.rejected_by or job_host_reason(cls.allowed_hosts, cls.denied_hosts, name) is not None:
        return 2
    return 1 if static_reason(cls, host, name in hosts) is not None else 0


def short_constraint(reason: str) -> str:
    """The constraint a matching reason names, without the host's side of it:
    "min_vram_gib 200 > free 80" -> "min_vram_gib 200"; "require_cuda but host has no CUDA
    GPU" -> "require_cuda"; "compute capability 7.0 < 8.0" -> "min_compute_capability 8.0"."""
    if reason.startswith("compute capability") and " < " in reason:
        return f"min_compute_capability {reason.rsplit(' < ', 1)[1]}"
    for cut in (" > ", " but ", " (has "):
        if cut in reason:
            return reason.split(cut, 1)[0]
    return reason


def _cut(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= MAX_REASON else first[:MAX_REASON - 1] + "…"
