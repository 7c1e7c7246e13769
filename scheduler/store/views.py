"""What ``fleet status`` and ``fleet explain`` are computed from, read in a few pipelined round
trips and handed over as plain data: scheduler/status.py and scheduler/explain.py are pure
functions over these, testable without Redis.

Status reads counters and indexes only (per-state and per-class sizes, the worker
registry), never every job, so it costs the same round trips at 100 jobs as at 100,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..manifest.model import HostSpec
from ..matching import ConstraintClass
from ..queue_order import priority_level
from ..states import JobState
from .queries import JobRecord, decode_attempts
from .streams import LATEST_METRICS_BYTES, LATEST_METRICS_WINDOW, metric_rows, text_entries
from .workers import WorkerInfo, parse_workers, queue_registry, queue_workers, worker_names

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True)
class FleetView:
    """The fleet as `fleet status` shows it, read at ``now``."""

    now: float
    counts: dict[str, int]  # jobs per state, plus "orphaned"
    workers: list[WorkerInfo]
    hosts: dict[str, HostSpec]  # the manifest's [hosts]
    classes: dict[str, ConstraintClass]  # by class id
    pending: dict[str, int]  # class id -> its pending jobs
    recent_failures: list[JobRecord]  # newest first
    running: list["RunningJob"] = field(default_factory=list)  # what each running job holds where
    load: dict | None = None  # a manifest load under way: {phase, step, steps, expires} (load_lock.lua)
    running_names: dict[str, str] = field(default_factory=dict)  # running job id -> its name


@dataclass(frozen=True)
class RunningJob:
    """A running job's GPU reservations, as its record holds them (claim.lua writes them)."""

    name: str
    host: str
    gpu_keys: tuple[str, ...]  # the ledger keys of its GPUs
    vram_gib: tuple[float, ...]  # what it reserved on each (a GPU's total when held whole)


@dataclass(frozen=True)
class ExplainView:
    """One job and what decides whether it can run, read at ``now``."""

    now: float
    job: JobRecord
    attempts: list[dict]
    workers: list[WorkerInfo]
    hosts: dict[str, HostSpec]
    ledgers: dict[str, dict[str, float]]  # host -> what running attempts hold there (live workers' hosts)
    parents: list[tuple[str, str]]  # (name, state) of each job it runs after
    ahead: int | None  # jobs of its class ahead of it in the pending queue; None if not queued
    # The classes whose best job is ahead of this one (queue order, at most HOLD_LOOKAHEAD), each
    # with that job's name and priority level: what a host may hold its GPUs for
    # (scheduler/reservation.py); and this job's own priority level.
    ahead_classes: list[tuple[ConstraintClass, str, int]] = field(default_factory=list)
    level: int = 0


@dataclass(frozen=True)
class JobsView:
    """A page of jobs and what their REASON, ELAPSED and PROGRESS columns are computed from
    (scheduler/reasons.py, scheduler/job_rows.py), read at ``now``."""

    now: float
    workers: list[WorkerInfo]
    hosts: dict[str, HostSpec]
    classes: dict[str, ConstraintClass]
    ledgers: dict[str, dict[str, float]]  # host -> what running attempts hold there (live workers' hosts)
    ahead: dict[str, int]  # pending job id -> jobs of its class ahead of it in the queue
    last_attempts: dict[str, dict]  # job id -> its latest attempt record
    latest_metrics: dict[str, list[dict]]  # job id -> its latest attempt's newest metrics lines, newest first

    def worker_named(self, name: str | None) -> WorkerInfo | None:
        return next((w for w in self.workers if w.name == name), None) if name else None


def read_jobs(store: Store, records: list[JobRecord], now: float) -> JobsView:
    """Three round trips whatever the page's size: the registry, [hosts], the classes, each
    job's latest attempt, each pending job's place in its queue and each started job's newest
    metrics; then the workers; then the ledgers of the live workers' hosts."""
    redis, keys = store.redis, store.keys
    pipe = redis.pipeline(transaction=False)
    queue_registry(pipe, keys, now)
    pipe.hgetall(keys.hosts)
    pipe.hgetall(keys.classes)
    pending = [r for r in records if r.state is JobState.PENDING]
    started = [r for r in records if r.attempts]
    for r in pending:
        pipe.zrank(keys.pending(r.class_id), r.job_id)
    for r in started:
        pipe.lindex(keys.attempts(r.job_id), r.attempts - 1)
        pipe.xrevrange(keys.metrics(r.job_id, r.attempts), count=LATEST_METRICS_WINDOW)
        pipe.getrange(keys.metrics_text(r.job_id, r.attempts), -LATEST_METRICS_BYTES, -1)  # once frozen
    registry, raw_hosts, raw_classes, *rest = pipe.execute(raise_on_error=False)
    _raise_refused([registry, raw_hosts, raw_classes])
    names = worker_names(registry)
    ahead = {r.job_id: int(n) for r, n in zip(pending, rest) if isinstance(n, int)}
    last_attempts, metrics = {}, {}
    for i, r in enumerate(started):
        raw, entries, text = rest[len(pending) + 3 * i:len(pending) + 3 * i + 3]
        if isinstance(raw, bytes):
            try:
                last_attempts[r.job_id] = decode_attempts(keys.attempts(r.job_id), [raw])[0]
            except StoreError:
                pass  # a damaged record: the row shows no times, `fleet job` names the key
        frozen = text_entries(text, cut=isinstance(text, bytes) and len(text) >= LATEST_METRICS_BYTES)
        newest_first = (entries if isinstance(entries, list) else []) + frozen[::-1][:LATEST_METRICS_WINDOW]
        if newest_first or isinstance(entries, list):
            metrics[r.job_id] = metric_rows(newest_first)
    pipe = redis.pipeline(transaction=False)
    queue_workers(pipe, keys, names)
    workers = parse_workers(keys, names, pipe.execute() if names else [], now)
    live_hosts = list(dict.fromkeys(w.host.hostname for w in workers if w.live))
    pipe = redis.pipeline(transaction=False)
    for host in live_hosts:
        pipe.hgetall(keys.ledger(host))
    ledgers = {host: _ledger(keys.ledger(host), raw) for host, raw in zip(live_hosts, pipe.execute() if live_hosts
                                                                          else [])}
    return JobsView(now, workers, store.catalog.hosts(raw_hosts), store.catalog.classes(raw_classes), ledgers,
                    ahead, last_attempts, metrics)


def _raise_refused(replies: list) -> None:
    """A reply of ``execute(raise_on_error=False)`` that is Redis's refusal, raised as ``execute()``
    would have: the store's error handling says it as one line."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def read_fleet(store: Store, now: float, failures: int) -> FleetView:
    """Two round trips: the counters, the registry, [hosts], the classes and the newest
    ``failures`` failed ids; then the workers, the classes' sizes and those jobs' records."""
    redis, keys = store.redis, store.keys
    pipe = redis.pipeline(transaction=False)
    states = list(JobState)
    for state in states:
        pipe.zcard(keys.state(state.value))
    pipe.zcard(keys.orphaned)
    queue_registry(pipe, keys, now)
    pipe.hgetall(keys.hosts)
    pipe.hgetall(keys.classes)
    pipe.zrevrange(keys.state(JobState.FAILED.value), 0, failures - 1)
    pipe.zrange(keys.state(JobState.RUNNING.value), 0, -1)
    pipe.hmget(keys.load_lock, "phase", "next", "chunks", "expires")
    *sizes, orphaned, registry, raw_hosts, raw_classes, failed, running, load = pipe.execute()
    counts = {state.value: int(n) for state, n in zip(states, sizes)}
    counts["orphaned"] = int(orphaned)
    names = worker_names(registry)
    hosts, classes = store.catalog.hosts(raw_hosts), store.catalog.classes(raw_classes)
    failed_ids = [i.decode() for i in failed]

    pipe = redis.pipeline(transaction=False)
    queue_workers(pipe, keys, names)
    for class_id in classes:
        pipe.zcard(keys.pending(class_id))
    for job_id in failed_ids:
        store.jobs.queue_read(pipe, job_id)
    # O(running jobs), not O(jobs): at most one per GPU or core slot of the fleet.
    for job_id in running:
        pipe.hmget(keys.job(job_id.decode()), "name", "last_host", "res_gpu", "res_vram")
    replies = pipe.execute(raise_on_error=False)
    head = len(names) + len(classes)
    _raise_refused(replies[:head])  # a job's own keys are named by parse_read instead
    workers = parse_workers(keys, names, replies[:len(names)], now)
    pending = {class_id: int(n) for class_id, n in zip(classes, replies[len(names):head])}
    records = [store.jobs.parse_read(job_id, replies[head + 2 * i], replies[head + 2 * i + 1])
               for i, job_id in enumerate(failed_ids)]
    running_replies = replies[head + 2 * len(failed_ids):]
    held = [_running_job(reply) for reply in running_replies]
    running_names = {job_id.decode(): reply[0].decode(errors="replace") for job_id, reply
                     in zip(running, running_replies) if isinstance(reply, list) and reply and reply[0]}
    return FleetView(now, counts, workers, hosts, classes, pending, [r for r in records if r is not None],
                     [h for h in held if h is not None], _load_under_way(load), running_names)


def _load_under_way(fields: list) -> dict | None:
    """The load lock's state as `fleet status` shows it, or None when no load runs."""
    phase, step, steps, expires = (f.decode() if f else None for f in fields)
    if phase is None:
        return None
    return {"phase": phase, "step": int(_number(step)), "steps": int(_number(steps)), "expires": _number(expires)}


def _number(text: str | None) -> float:
    """A lock field as a number; 0 for one missing or not a number (status shows, it does not judge)."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _ledger(key: str, raw: dict) -> dict[str, float]:
    """A host ledger's fields as numbers; a field that is not one is a StoreError worded as the
    claim's refusal of it (claim.lua), which stops that host's workers too."""
    out = {}
    for field_name, value in raw.items():
        try:
            out[field_name.decode()] = float(value)
        except ValueError:
            raise StoreError(f"ledger {key} field {field_name.decode(errors='replace')} is not a number; no worker "
                             f"of this host can claim until it is fixed: delete the field if no job runs there") \
                from None
    return out


def _running_job(reply) -> RunningJob | None:
    """A running job's reservations from its record's fields; None for one that holds no GPU or
    whose fields are not what claim.lua writes (status shows the rest of the fleet regardless)."""
    if isinstance(reply, Exception):
        return None
    name, host, gpus, vram = (v.decode(errors="replace") if v is not None else "" for v in reply)
    if not gpus:
        return None
    try:
        amounts = tuple(float(x) for x in vram.split(","))
    except ValueError:
        return None
    keys = tuple(gpus.split(","))
    return RunningJob(name, host, keys, amounts) if len(amounts) == len(keys) else None


def pending_names(store: Store, class_ids: list[str], per_class: int) -> dict[str, list[str]]:
    """The names of the first ``per_class`` waiting jobs of each class (queue order), in two
    round trips whatever the store's size; none if ``class_ids`` is empty."""
    if not class_ids:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    for class_id in class_ids:
        pipe.zrange(store.keys.pending(class_id), 0, per_class - 1)
    ids = {class_id: [i.decode() for i in reply] for class_id, reply in zip(class_ids, pipe.execute())}
    names, _ = store.jobs.names_and_records([i for some in ids.values() for i in some], [])
    return {class_id: [names[i] for i in some if i in names] for class_id, some in ids.items()}


HOLD_LOOKAHEAD = 32  # the classes ahead of a job that explain asks whether a host holds for them


def read_explain(store: Store, job: JobRecord, now: float, workers: list[WorkerInfo] | None = None) -> ExplainView:
    """At most three round trips: the attempts, [hosts], the job's parents and its place in
    its class's queue (and the registry, unless ``workers`` are given); then the workers and
    the parents' states; then the ledgers of the live workers' hosts."""
    redis, keys = store.redis, store.keys
    pipe = redis.pipeline(transaction=False)
    pipe.lrange(keys.attempts(job.job_id), 0, -1)
    pipe.hgetall(keys.hosts)
    pipe.smembers(keys.deps_prefix + job.job_id)
    pipe.zrank(keys.pending(job.class_id), job.job_id)
    pipe.zscore(keys.pending(job.class_id), job.job_id)
    pipe.zrange(keys.heads, 0, HOLD_LOOKAHEAD - 1, withscores=True)
    if workers is None:
        queue_registry(pipe, keys, now)
    raw_attempts, raw_hosts, deps, ahead, score, heads, *registry = pipe.execute()
    names = worker_names(registry[0]) if registry else []
    parents = [m.decode() for m in deps]
    ahead_at = {c.decode(): at for c, at in heads if score is not None and at < score and c.decode() != job.class_id}
    ahead_ids = list(ahead_at)

    pipe = redis.pipeline(transaction=False)
    queue_workers(pipe, keys, names)
    for parent in parents:
        pipe.hmget(keys.job(parent), "name", "state")
    if ahead_ids:
        pipe.hmget(keys.classes, ahead_ids)
        for class_id in ahead_ids:
            pipe.zrange(keys.pending(class_id), 0, 0)
    replies = pipe.execute() if names or parents or ahead_ids else []
    if workers is None:
        workers = parse_workers(keys, names, replies[:len(names)], now)
    states = [(n.decode(), st.decode()) for n, st in replies[len(names):len(names) + len(parents)] if n and st]
    ahead_classes = []
    if ahead_ids:
        records, heads_of = replies[len(names) + len(parents)], replies[len(names) + len(parents) + 1:]
        parsed = store.catalog.classes({i.encode(): r for i, r in zip(ahead_ids, records) if r is not None})
        ahead_classes = [(parsed[i], first[0].decode()) for i, first in zip(ahead_ids, heads_of)
                         if i in parsed and first]

    live_hosts = list(dict.fromkeys(w.host.hostname for w in workers if w.live))
    pipe = redis.pipeline(transaction=False)
    for host in live_hosts:
        pipe.hgetall(keys.ledger(host))
    for _, head_id in ahead_classes:
        pipe.hget(keys.job(head_id), "name")
    replies = pipe.execute() if live_hosts or ahead_classes else []
    ledgers = {host: _ledger(keys.ledger(host), raw) for host, raw in zip(live_hosts, replies)}
    ahead_classes = [(cls, (name or head_id.encode()).decode(), priority_level(ahead_at[cls.class_id]))
                     for (cls, head_id), name in zip(ahead_classes, replies[len(live_hosts):])]
    return ExplainView(now, job, decode_attempts(keys.attempts(job.job_id), raw_attempts), workers,
                       store.catalog.hosts(raw_hosts), ledgers, states, ahead, ahead_classes,
                       priority_level(score) if score is not None else 0)
