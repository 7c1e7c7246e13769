"""Every Redis key fleet touches is built here and nowhere else.

All keys of a namespace share the Redis Cluster hash tag ``{<namespace>}`` so that
multi-key Lua scripts stay legal on Redis Cluster and Valkey cluster: the whole
namespace lives in one slot. rq's own records for the namespace live under
``{<namespace>}:rq`` (rq's ``RQ_KEY_PREFIX``), inside the same slot, so a fleet
Lua script may update an rq job hash atomically with fleet's own records.
"""

from __future__ import annotations

from dataclasses import dataclass

# Job states index sets are named after scheduler.states.JobState values.


@dataclass(frozen=True)
class Keys:
    namespace: str

    @property
    def prefix(self) -> str:
        return "{" + self.namespace + "}"

    # -- jobs ---------------------------------------------------------------
    def job(self, job_id: str) -> str:
        """Hash: one job's record (spec, state, attempts, timestamps, placement)."""
        return f"{self.prefix}:job:{job_id}"

    def spec(self, job_id: str) -> str:
        """String: the job's full spec and identity as JSON.

        Kept out of the job hash so that hash keeps only short values and stays
        listpack-encoded: a hashtable-encoded hash is re-laid out by Redis's
        incremental rehash on mere reads, and an unchanged reload must leave every
        key byte-for-byte identical (DUMP).
        """
        return f"{self.prefix}:spec:{job_id}"

    @property
    def spec_prefix(self) -> str:
        return f"{self.prefix}:spec:"

    @property
    def job_prefix(self) -> str:
        """Prefix Lua scripts append a job id to (they may touch any job)."""
        return f"{self.prefix}:job:"

    @property
    def jobs(self) -> str:
        """Zset: every job ever loaded, scored by load sequence."""
        return f"{self.prefix}:jobs"

    @property
    def jobs_by_id(self) -> str:
        """Zset, all scores 0: every job id, for job_id-prefix lookup with ZRANGEBYLEX."""
        return f"{self.prefix}:ids"

    @property
    def names(self) -> str:
        """Hash: job name -> job id of the job that currently carries that name."""
        return f"{self.prefix}:names"

    @property
    def in_manifest(self) -> str:
        """Set: ids of the jobs the last applied manifest asks for."""
        return f"{self.prefix}:in_manifest"

    @property
    def orphaned(self) -> str:
        """Zset: jobs a reload no longer lists, scored by when that happened; kept, never deleted."""
        return f"{self.prefix}:orphaned"

    def state(self, state: str) -> str:
        """Zset per state: job ids scored by the time they entered it (newest activity last)."""
        return f"{self.prefix}:state:{state}"

    @property
    def state_prefix(self) -> str:
        return f"{self.prefix}:state:"

    @property
    def deps_prefix(self) -> str:
        """Set per job (prefix + id): the ids of the jobs it runs ``after``."""
        return f"{self.prefix}:deps:"

    @property
    def dependents_prefix(self) -> str:
        """Set per job (prefix + id): the ids of the jobs waiting for it."""
        return f"{self.prefix}:dependents:"

    @property
    def seq(self) -> str:
        """Counter: load order, the FIFO tie-break between jobs of equal priority and GPU need."""
        return f"{self.prefix}:seq"

    # -- matching index -----------------------------------------------------
    def pending(self, class_id: str) -> str:
        """Zset per constraint class: claimable job ids, best first (scored by scheduler/queue_order.py)."""
        return f"{self.prefix}:pending:{class_id}"

    @property
    def pending_prefix(self) -> str:
        return f"{self.prefix}:pending:"

    @property
    def heads(self) -> str:
        """Zset: class id -> score of its best pending job; what a claim reads first."""
        return f"{self.prefix}:heads"

    @property
    def classes(self) -> str:
        """Hash: class id -> JSON of the constraints every job in that class shares."""
        return f"{self.prefix}:classes"

    @property
    def hosts(self) -> str:
        """Hash: host name -> JSON of its [hosts.NAME] table from the manifest."""
        return f"{self.prefix}:hosts"

    @property
    def manifest_meta(self) -> str:
        """Hash: name, source path and digest of the manifest last applied."""
        return f"{self.prefix}:manifest"

    @property
    def events(self) -> str:
        """Stream: 'jobs became claimable' notices that idle workers block on."""
        return f"{self.prefix}:events"

    @property
    def load_lock(self) -> str:
        """Hash: the manifest load under way, if any (owner, phase, staged chunks, next step);
        scheduler/store/lua/load_lock.lua says its life."""
        return f"{self.prefix}:load"

    def load_chunk(self, load_id: str, step: int) -> str:
        """String: one staged chunk of load ``load_id``, applied by step ``step`` (load_step.lua)."""
        return f"{self.prefix}:load:{load_id}:{step}"

    # -- claims, leases, workers ----------------------------------------------
    @property
    def running(self) -> str:
        """Zset: running job id -> lease deadline (epoch seconds); the reaper's work list."""
        return f"{self.prefix}:running"

    def ledger(self, host: str) -> str:
        """Hash per host: RAM, cores and per-GPU VRAM reserved by the fleet jobs running there."""
        return f"{self.prefix}:ledger:{host}"

    @property
    def ledger_prefix(self) -> str:
        return f"{self.prefix}:ledger:"

    def attempts(self, job_id: str) -> str:
        """List: one JSON record per attempt (worker, host, start, end, outcome, exit code, output dir,
        and ``archived_to`` once `fleet prune` moved the outputs)."""
        return f"{self.prefix}:attempts:{job_id}"

    @property
    def attempts_prefix(self) -> str:
        return f"{self.prefix}:attempts:"

    def log(self, job_id: str, attempt: int) -> str:
        """Stream: an attempt's output lines (capped), for `fleet logs -f`, while it runs (then
        :meth:`log_text`); the file in its output dir is whole."""
        return f"{self.prefix}:log:{job_id}:{attempt}"

    def metrics(self, job_id: str, attempt: int) -> str:
        """Stream: an attempt's metric lines ($FLEET_METRICS), capped, with Redis timestamps as ids,
        while it runs (then :meth:`metrics_text`)."""
        return f"{self.prefix}:metrics:{job_id}:{attempt}"

    def log_text(self, job_id: str, attempt: int) -> str:
        """String: an ended attempt's log stream, frozen into one ``<entry id>\\t<line>\\n`` per line
        (compact.lua: a stream of a few lines costs ~0.8 KB, this ~0.2 KB); same expiry."""
        return f"{self.prefix}:log_text:{job_id}:{attempt}"

    def metrics_text(self, job_id: str, attempt: int) -> str:
        """String: an ended attempt's metrics stream, frozen as :meth:`log_text` is."""
        return f"{self.prefix}:metrics_text:{job_id}:{attempt}"

    def artifacts(self, job_id: str, attempt: int) -> str:
        """String: the integrity manifest (per-file sha256) of an attempt's output dir."""
        return f"{self.prefix}:artifacts:{job_id}:{attempt}"

    def result(self, job_id: str) -> str:
        """String: the JSON summary (result.json) of the job's latest finished attempt."""
        return f"{self.prefix}:result:{job_id}"

    @property
    def workers(self) -> str:
        """Zset: worker name -> last heartbeat (epoch seconds)."""
        return f"{self.prefix}:workers"

    def worker(self, name: str) -> str:
        """Hash: one worker's host, resources, state and current job."""
        return f"{self.worker_prefix}{name}"

    @property
    def worker_prefix(self) -> str:
        return f"{self.prefix}:worker:"

    @property
    def idle(self) -> str:
        """Zset: worker name -> when it last said it is idle (a slotted worker: any of its slots);
        with the prefer zsets, what a deferral reads instead of every worker's record."""
        return f"{self.prefix}:idle"

    def prefer(self, class_id: str) -> str:
        """Zset per constraint class: worker name -> its host's placement rank for the class
        (worker/preference.py placement_rank), offered by idle workers that could run it."""
        return f"{self.prefix}:prefer:{class_id}"

    @property
    def prefer_prefix(self) -> str:
        return f"{self.prefix}:prefer:"

    def forks(self, job_id: str) -> str:
        """Set: the ids of the jobs whose manifest entry says they were forked from this one
        (`forked_from`; written by the load that adds them), for `fleet job`'s "forked into"."""
        return f"{self.prefix}:forks:{job_id}"

    @property
    def forks_prefix(self) -> str:
        return f"{self.prefix}:forks:"

    @property
    def history(self) -> str:
        """Zset: "<job_id>:<attempt>" of every attempt that ended, scored by when it ended
        (finish.lua), so `fleet history` reads a window, not every job."""
        return f"{self.prefix}:history"

    @property
    def retry_wait(self) -> str:
        """Zset: id of each pending job waiting out its retry_delay_s -> when it may be claimed
        again (finish.lua adds it, a claim puts it back in the pending index once due)."""
        return f"{self.prefix}:retry_wait"

    @property
    def reaper_tick(self) -> str:
        """String: when a reaper last ran; a long gap means Redis or the reaper was away."""
        return f"{self.prefix}:reaper_tick"

    def script_prefixes(self) -> dict[str, str]:
        """The key prefixes every Lua script receives in its payload (a script appends a job id,
        class id or host name to reach any such key); sent whole so no caller picks them by hand."""
        return {"job_prefix": self.job_prefix, "spec_prefix": self.spec_prefix, "state_prefix": self.state_prefix,
                "deps_prefix": self.deps_prefix, "dependents_prefix": self.dependents_prefix,
                "pending_prefix": self.pending_prefix, "heads_key": self.heads, "ledger_prefix": self.ledger_prefix,
                "attempts_prefix": self.attempts_prefix, "rq_job_prefix": self.rq_job_prefix,
                "load_lock": self.load_lock, "history_key": self.history, "rq_canceled_key": self.rq_canceled,
                "forks_prefix": self.forks_prefix, "retry_wait_key": self.retry_wait}

    # -- rq's records for this namespace ------------------------------------
    @property
    def rq_prefix(self) -> str:
        """The RQ_KEY_PREFIX a worker of this namespace runs rq with."""
        return f"{self.prefix}:rq"

    def rq_job(self, job_id: str) -> str:
        """rq's job hash, laid out exactly as ``rq.job.Job.key`` under ``rq_prefix``."""
        return f"{self.rq_prefix}:job:{job_id}"

    def rq_results(self, job_id: str) -> str:
        """rq's result stream of a job (rq.results.Result), under ``rq_prefix``."""
        return f"{self.rq_prefix}:results:{job_id}"

    @property
    def rq_workers(self) -> str:
        """rq's set of its workers' keys (rq.worker_registration.REDIS_WORKER_KEYS), what `rq info` lists."""
        return f"{self.rq_prefix}:workers"

    @property
    def rq_workers_of_queue(self) -> str:
        """rq's set of the keys of the workers of the namespace's queue."""
        return f"{self.rq_prefix}:workers:{self.queue_name}"

    @property
    def rq_worker_prefix(self) -> str:
        """rq's worker hash is this + its rq name (rq.Worker.key)."""
        return f"{self.rq_prefix}:worker:"

    @property
    def rq_queue(self) -> str:
        """rq's list of the namespace's queue (rq.Queue.key), where `rq requeue` pushes ids."""
        return f"{self.rq_prefix}:queue:{self.queue_name}"

    @property
    def rq_canceled(self) -> str:
        """rq's CanceledJobRegistry of the namespace's queue (rq.registry.CanceledJobRegistry.key)."""
        return f"{self.rq_prefix}:canceled:{self.queue_name}"

    @property
    def rq_job_prefix(self) -> str:
        return f"{self.rq_prefix}:job:"

    @property
    def queue_name(self) -> str:
        """The rq queue name fleet's jobs carry as ``origin``."""
        return self.namespace

