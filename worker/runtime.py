"""What fleet keeps around one rq worker: its registry entry, its pauses, and preparing attempts.

:class:`WorkerRuntime` is the worker's side of fleet that is not rq's: it publishes the
worker's entry for `fleet status`, says why claiming is paused (a full disk, a damaged
store), and turns a granted claim into rq's job and fleet's :class:`worker.attempt.Attempt`.
The rq subclasses in :mod:`worker.rq_worker` call it; recording an attempt's end is
:class:`worker.completion.Completion`'s.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Callable

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from scheduler.dependencies import parents_of
from scheduler.errors import StoreError
from scheduler.runs_layout import UnsafePathError
from scheduler.states import Outcome
from scheduler.store.claims import Claim, Claims, output_dir_of
from scheduler.store.queries import JobQueries
from scheduler.store.rq_bridge import queue_rq_job_read, register_rq_queue, restore_rq_job
from scheduler.store.workers import SLOT_FIELD, queue_publish, slot_entry

from .attempt import Attempt, WorkerPlace, build_attempt, previous_attempt, resume_from, run_group
from .claim import Claimer
from .completion import Completion
from .disk import DiskGate
from .rq_worker import FleetQueue, lost_grace_s
from .runner import RunError

log = logging.getLogger("fleet.worker")
NODE = socket.gethostname()  # the machine, whatever --host-name says: a restart here may take over a dead name
TRIM_EVERY_S = 60.0  # how often a worker drops long-gone workers' names from the registry zset


class WorkerRuntime:
    """Everything fleet needs around one rq worker: the claim loop, registry entry, attempts."""

    def __init__(self, redis_client, keys, claims: Claims, loop: Claimer, host_name: str, runs_dir: str,
                 host_info: dict, heartbeat_s: float, worker_name: str, gpus, redis_url: str = "",
                 disk_gate: DiskGate | None = None, slot: int | None = None, slots: int = 1):
        self.redis = redis_client
        self.keys = keys
        self.claims = claims
        self.loop = loop
        self.host_name = host_name
        self.runs_dir = runs_dir
        self.host_info = host_info
        self.heartbeat_s = heartbeat_s
        self.worker_name = worker_name
        # A `--slots N` worker's slot publishes its own entry inside the worker's one record;
        # the record's pid is the supervisor's, which systemd and `kill` know.
        self.slot, self.slots = slot, slots
        self.pid = os.getpid() if slot is None else os.getppid()
        self.place = WorkerPlace(runs_dir, host_name, worker_name, gpus, redis_url)
        self.disk_gate = disk_gate or DiskGate(runs_dir, 0)
        self.completion = Completion(redis_client, keys, claims, worker_name, self.damage_reason, self.publish)
        self._paused: str | None = None
        self.exit_code = 0  # the worker process's, set when it stops on an error
        self._published: tuple[tuple, float] = ((), 0.0)  # (state, job_id, note), when
        self._trimmed_at = 0.0
        self.queue = FleetQueue(keys.queue_name, connection=redis_client)
        FleetQueue.fleet_keys = keys
        register_rq_queue(redis_client, self.queue)

    def check_store(self) -> None:
        """Raise StoreError naming the first key every claim of this worker touches that holds a
        value fleet did not write."""
        found = self.claims.foreign_keys(self.worker_name, self.host_name)
        if found:
            raise StoreError(found[0])

    def damage_reason(self, err: Exception) -> str:
        """What an operator reads about the damage behind ``err``: a StoreError says it already;
        Redis's own refusal (WRONGTYPE) does not name the key, so the store is looked at."""
        if isinstance(err, StoreError):
            return str(err)
        try:
            found = self.claims.foreign_keys(self.worker_name, self.host_name)
        except redis.RedisError:
            found = []
        return found[0] if found else (
            f"Redis refused a command of the claim ({err}); a key under {self.keys.prefix} holds a value fleet "
            f"did not write: find it with redis-cli TYPE, move it aside or delete it, and reload the manifest")

    def pause_reason(self) -> str | None:
        """Why this worker must not claim now (its disk is full), announced once per change."""
        reason = self.disk_gate.reason()
        if reason != self._paused:
            if reason:
                log.error("claiming paused: %s", reason)
            else:
                log.info("claiming resumed: %s has room again", self.runs_dir)
            self._paused = reason
        if reason:
            self.publish("paused", note=reason)
        return reason

    def publish(self, state: str, job_id: str = "", note: str = "", max_age_s: float = 0.0) -> None:
        """Keep this worker's entry in fleet's registry fresh (fleet status reads it); with
        ``max_age_s``, skip it when this same entry was published less than that ago."""
        if max_age_s and self._published[0] == (state, job_id, note) and \
                time.monotonic() - self._published[1] < max_age_s:
            return
        pipe = self.redis.pipeline(transaction=False)
        done = self.publish_into(pipe, state, job_id, note)
        pipe.execute()
        done()

    def publish_into(self, pipe, state: str, job_id: str = "", note: str = "") -> Callable[[], None]:
        """Queue this entry's update onto a caller's pipeline (to share its round trip); call
        what it returns once the pipeline has run, so ``max_age_s`` knows it was said."""
        now = time.time()
        fields = {"name": self.worker_name, "host": self.host_name, "node": NODE, "pid": self.pid,
                  "slots": self.slots, **self.host_info}
        if self.slot is None:
            fields.update(state=state, job_id=job_id, note=note)
        else:
            fields[f"{SLOT_FIELD}{self.slot}"] = slot_entry(state, job_id, note, now, os.getpid())
        idle = True if state == "idle" else (False if self.slot is None or state == "stopped" else None)
        trim = now - self._trimmed_at >= TRIM_EVERY_S
        if trim:
            self._trimmed_at = now
        queue_publish(pipe, self.keys, self.worker_name, fields, now, idle=idle, trim=trim)

        def said() -> None:
            self._published = ((state, job_id, note), time.monotonic())
        return said

    def prepare(self, claim: Claim) -> tuple[Job, Attempt] | None:
        """rq's job and fleet's attempt for a claim, with this worker announced busy with it; a job
        that cannot start is failed (None), not retried forever.

        fleet's record of the job, rq's, clearing rq's failed-registry entry (a retry starts
        clean) and "busy" in fleet's registry go in one round trip: as separate calls they were
        over 1 ms of every job's dispatch. A job that then cannot start shows busy only until
        the worker's next publish."""
        queries = JobQueries(self.redis, self.keys)
        job = Job(claim.job_id, connection=self.redis)
        pipe = self.redis.pipeline(transaction=False)
        queries.queue_read(pipe, claim.job_id)
        queue_rq_job_read(pipe, job)
        pipe.hmget(self.keys.manifest_meta, "name", "path")  # the run group trackers are told
        pipe.lindex(self.keys.attempts(claim.job_id), max(0, claim.attempt - 2))  # the attempt it may resume
        FailedJobRegistry(self.keys.queue_name, connection=self.redis).remove(claim.job_id, pipeline=pipe)
        said_busy = self.publish_into(pipe, "busy", claim.job_id)
        raw_record, raw_spec, raw_job, meta, raw_previous, *rest = pipe.execute(raise_on_error=False)
        for reply in rest:
            if isinstance(reply, Exception):
                raise reply
        said_busy()
        try:
            record = queries.parse_read(claim.job_id, raw_record, raw_spec)
            if record is None:
                raise StoreError(f"job record {self.keys.job(claim.job_id)} vanished after the claim")
            self._restore_rq_record(job, record.name, raw_job)
        except StoreError as err:  # a corrupt record fails its own job, never the worker
            log.error("job %s cannot start: %s", claim.job_id, err)
            self.completion.complete(claim, Outcome.FAILED, None, str(err))
            return None
        gpus = f" GPU {','.join(map(str, (p - 1 for p in claim.gpu_positions)))}" if claim.gpu_positions else ""
        log.info("claimed %s (%s) attempt %d on %s%s", record.name, claim.job_id[:8], claim.attempt,
                 self.host_name, gpus)
        self.completion.names[claim.job_id] = record.name
        try:
            parent_dirs = self.parent_output_dirs(parents_of(record.spec))
            previous = previous_attempt(raw_previous, claim.attempt)
            attempt = build_attempt(self.place, self.keys, claim, record, parent_dirs,
                                    lost_grace_s(self.claims.lease_s), run_group(meta),
                                    resume_from(previous, self.place, record.name, record.job_id))
        except (OSError, RunError, UnsafePathError) as err:  # unsafe name, bad command, unwritable runs dir
            log.error("job %s (%s) cannot start: %s", record.name, record.job_id, err)
            self.completion.complete(claim, Outcome.FAILED, None, f"cannot start: {err}")
            return None
        return job, attempt

    def _restore_rq_record(self, job: Job, name: str, raw_job: Any) -> None:
        """Load rq's record of the claimed job into ``job``, writing it back first if it is gone;
        a value rq cannot read is a StoreError naming the key (it fails this attempt)."""
        if isinstance(raw_job, Exception):  # not a hash: WRONGTYPE
            raise StoreError(f"rq's job record {job.key} holds a value rq did not write ({raw_job}); delete it: "
                             f"the job's next attempt writes it anew")
        if not raw_job:
            raw_job = restore_rq_job(self.redis, self.keys, job.id, name)
        try:
            job.restore(raw_job)
        except Exception as err:  # rq decodes its fields with no error type of its own: any may come
            raise StoreError(f"rq's job record {job.key} cannot be read by rq ({type(err).__name__}: {err}); "
                             f"delete it: the job's next attempt writes it anew") from None

    def parent_output_dirs(self, parents: dict[str, str]) -> dict[str, str]:
        """Each parent's output dir (on the host that ran it: shared storage, or the same host,
        is the operator's business): for ``after``, its last finished attempt's; for
        ``after_any`` and ``after_failed``, its latest attempt's, which is how it ended."""
        dirs = {}
        queries = JobQueries(self.redis, self.keys)
        for name, field in parents.items():
            parent_id = queries.id_of_name(name)
            if not parent_id:
                continue
            if field == "after":
                last = queries.last_finished(parent_id)
            else:
                last = next((a for a in reversed(queries.attempts(parent_id)) if output_dir_of(a)), None)
            if last and output_dir_of(last):
                dirs[name] = output_dir_of(last)
        return dirs
