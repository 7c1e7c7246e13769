"""fleet's rq layer: a Worker whose dequeue is fleet's claim, and a Queue whose re-enqueue is fleet's.

rq keeps doing what it does well (Job records, registries, the forking work horse,
warm/cold shutdown, `rq info`); fleet replaces only the choice of job. rq's own
re-enqueue paths (requeue of a failed job, retries, dependency release) call
``Queue.push_job_id``, which here returns the job to fleet's pending index instead
of a list no fleet worker reads.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import psutil
import redis
from rq import Queue, Worker
from rq.job import Job

from scheduler import sdnotify
from scheduler.errors import StoreError
from scheduler.states import Outcome
from scheduler.store.actions import apply_action
from scheduler.store.errors import UNREACHABLE
from scheduler.store.loading import RQ_FUNC
from scheduler.store.rq_bridge import absorb_rq_requeues, pop_requeued
from scheduler.store.workers import queue_drain_read

from . import execute
from .attempt import Attempt, close_pipe
from .completion import DAMAGE_RETRY_S
from .proctree import KILL_GRACE_S, adopt_orphans, end_adopted, kill_tree
from .runner import POLL_S

if TYPE_CHECKING:
    from .runtime import WorkerRuntime
    from .slots import SlotBoard

log = logging.getLogger("fleet.worker")
# A worker republishes "idle" before each claim; when it said so this recently (as it does on
# ending each job) the entry is fresh enough, and the round trip was ~0.4 ms of each job.
IDLE_REPUBLISH_S = 1.0
# An idle worker looks for work when an event says some may be claimable, when a deferral is
# due, and otherwise this often (what a missed event or a change outside fleet, such as VRAM
# freed by another program, waits at most). Looking every second cost each idle worker ~15
# Redis commands a second; this keeps it to a few, whatever the fleet's size (issue 18).
IDLE_LOOK_S = 10.0


def idle_look_s(lease_s: float) -> float:
    """How often an idle worker looks for work without an event: IDLE_LOOK_S, or its heartbeat
    interval where that is shorter (each look republishes the worker's idle entry, which must
    stay younger than its lease)."""
    return min(IDLE_LOOK_S, heartbeat_interval_s(lease_s))


def heartbeat_interval_s(lease_s: float) -> float:
    """How often a worker's registry entry is refreshed: a third of its lease, at least 0.5 s."""
    return max(0.5, lease_s / 3)


SIBLING_WAIT_S = 0.2  # a burst slot with nothing to claim looks again this often while a sibling runs


def renewal_interval_s(lease_s: float) -> int:
    """How often a busy worker renews its job's lease: rq's job monitoring interval, whole seconds."""
    return max(1, int(lease_s / 3))


def lost_grace_s(lease_s: float) -> float:
    """The checkpoint grace of a job whose worker died. The reaper hands the job to another worker
    once the lease runs out, and the lease was last renewed up to one renewal interval before the
    death, which the horse notices within a poll: half of what is left of the lease then (a
    margin for scheduling delays), at most the usual grace."""
    return max(0.0, min(KILL_GRACE_S, (lease_s - renewal_interval_s(lease_s) - POLL_S) / 2))


class FleetQueue(Queue):
    """The namespace's rq queue; fleet jobs never wait in its list but in fleet's pending index."""

    fleet_keys = None  # set by the worker

    def push_job_id(self, job_id: str, pipeline=None, at_front: bool = False) -> None:
        """rq wants this job run again (requeue, retry): make it pending in fleet instead."""
        if self.fleet_keys is None or pipeline is not None:
            # Inside an rq pipeline the id goes onto the list; the worker absorbs it right after.
            return super().push_job_id(job_id, pipeline=pipeline, at_front=at_front)
        apply_action(self.connection, self.fleet_keys, "retry", [job_id])


class FleetWorker(Worker):
    queue_class = FleetQueue

    def __init__(self, *args: Any, fleet: "WorkerRuntime", board: "SlotBoard | None" = None, **kwargs: Any):
        self.fleet = fleet
        # A `--slots N` worker's slot: rq knows it as "<worker>:<slot>" (one rq worker, one
        # work horse per slot, as `rq info` shows), fleet as the worker it belongs to.
        self.board = board
        self._waiting_on_siblings = False  # burst: nothing to claim, waiting for a busy sibling
        super().__init__(*args, **kwargs)
        self._fleet_kill_reason: Outcome | None = None
        self._claim = None
        self._attempt: Attempt | None = None  # what the claim runs as, once prepared: see perform_job
        self._after_job = False  # a job just ended; rq's next plain heartbeat is fleet's beat
        self._beaten: tuple[bool, float] | None = None  # that beat's drain flag and when, for the dequeue
        self._cancel_seen: float | None = None  # when a renewal first said the running job is canceled
        self._attempt_failure: execute.AttemptFailed | None = None  # how the horse's attempt ended, for rq
        self._damage_said: str | None = None  # why claiming is paused on a damaged store, as last logged
        # The horse's orphans become this worker's when the horse dies: see _end_leftovers.
        if not adopt_orphans():
            log.warning("this kernel cannot make the worker the reaper of its jobs' orphans: a job whose work "
                        "horse is killed may outlive its attempt")

    def _set_ip_address(self, connection) -> None:
        """rq parses CLIENT INFO; a server that answers it in another shape (fakeredis, the demo's
        fallback) must not stop the worker over a field that is only shown in `rq info`."""
        try:
            super()._set_ip_address(connection)
        except ValueError:
            self.ip_address = "unknown"

    # -- dequeue = claim ----------------------------------------------------------
    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        found = self._dequeue(timeout, max_idle_time)
        if found is None and self.board is not None:
            self.board.mark(self.fleet.slot, busy=False)  # leaving: its siblings' burst need not wait for it
        return found

    def _dequeue(self, timeout: int | None, max_idle_time: int | None):
        self.procline(f"fleet: waiting for work on {self.fleet.host_name}")
        backoff = 0.5
        idle_since = time.monotonic()
        idle_said = False
        look_s = self.fleet.loop.look_every_s  # idle_look_s of the worker's lease
        woken, last_try, due_at = True, -look_s, None
        while not self._stop_requested:
            sdnotify.keepalive()  # systemd's watchdog: alive while waiting, Redis there or not
            try:
                if not woken and timeout is not None and self._claim is None and \
                        time.monotonic() - last_try < look_s and (due_at is None or time.monotonic() < due_at):
                    # Nothing happened since the last look: wait on, a second at a time (so a stop
                    # request is seen), and only look again every look_s without an event.
                    woken = self.fleet.loop.wait_for_work(min(1.0, look_s - (time.monotonic() - last_try)))
                    continue
                last_try, due_at = time.monotonic(), None
                beaten, self._beaten = self._beaten, None
                if beaten is not None and time.monotonic() - beaten[1] < IDLE_REPUBLISH_S:
                    drain = beaten[0]  # the beat after the last job was a moment ago
                else:
                    drain = self._beat(set_idle=not idle_said)
                idle_said = True
                if drain:
                    self.fleet.publish("draining")
                    if timeout is None:
                        return None
                    self.fleet.loop.wait_for_work(1.0)
                    continue
                if self._claim is None:
                    paused = self.fleet.pause_reason()
                    if paused:
                        if timeout is None:  # burst: this worker can run nothing until someone frees space
                            log.error("stopping: %s", paused)
                            return None
                        self.fleet.loop.wait_for_work(1.0)
                        continue
                    if self._damage_said:  # paused on a damaged store: look before taking a job
                        self.fleet.check_store()
                    self.fleet.publish("idle", max_age_s=IDLE_REPUBLISH_S)
                    if self.board is not None and not self._waiting_on_siblings:  # see SlotBoard
                        self.board.mark(self.fleet.slot, busy=True)
                    # Held across Redis errors until the job starts: a claim the store already
                    # granted must not be dropped and left to expire as a lost attempt.
                    self._claim = self.fleet.loop.try_claim()
                backoff = 0.5
                if self._claim is not None:
                    if self.board is not None:
                        self.board.mark(self.fleet.slot, busy=True)
                        self._waiting_on_siblings = False
                    prepared = self.fleet.prepare(self._claim)
                    self._claiming_resumed()
                    if prepared is None:
                        self._claim = None
                        woken = True  # look again at once
                        continue
                    job, self._attempt = prepared
                    return job, self.fleet.queue
                self._claiming_resumed()
                due = self.fleet.loop.next_due
                if timeout is None and due is None:  # burst: nothing this worker can run right now
                    if self.board is None:
                        return None
                    self.board.mark(self.fleet.slot, busy=False)
                    if not self.board.others_busy(self.fleet.slot):
                        return None
                    # A sibling's job may still end and free what a pending job needs, or
                    # unblock its dependants: the worker is not done until all its slots are.
                    # While it waits, this slot's own look-agains leave it marked idle (else
                    # two waiting slots kept each other waiting), and short: a sibling that
                    # finds nothing leaves without an event.
                    self._waiting_on_siblings = True
                    self.fleet.loop.wait_for_work(SIBLING_WAIT_S)
                    continue
                if max_idle_time is not None and time.monotonic() - idle_since > max_idle_time:
                    return None
                # Short blocks so a stop request (a flag) is seen within a second.
                wait = min(timeout or self.fleet.heartbeat_s, self.fleet.heartbeat_s, 1.0)
                if due is not None:
                    wait = min(wait, due + 0.01)
                    due_at = time.monotonic() + due
                woken = self.fleet.loop.wait_for_work(wait)
            except UNREACHABLE as err:
                log.warning("Redis unreachable (%s); retrying in %.1fs", type(err).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            except (StoreError, redis.ResponseError) as err:
                if self._pause_for_damage(err, burst=timeout is None):
                    return None
        if self._claim is not None:
            self._hand_back_unstarted()
        return None

    def _claiming_resumed(self) -> None:
        """A claim (and the start of its job) went through: a pause for damage is over."""
        if self._damage_said:
            log.info("claiming resumed: the store reads as fleet's again")
            self._damage_said = None

    def _pause_for_damage(self, err: Exception, burst: bool) -> bool:
        """A fleet key holds a value fleet did not write. Claiming stops and says why, once, in
        the log and in `fleet status`; the worker stays up and tries again every DAMAGE_RETRY_S,
        looking at the store before it claims (exiting instead, under Restart=always, is a crash
        loop that says why only in the journal; retrying at once is a spin). Returns True when
        the worker should stop: in burst mode, non-zero."""
        if self._claim is not None:  # granted, but its job could not be prepared: hand it back
            try:
                self._hand_back_unstarted()
            except (StoreError, redis.RedisError):
                self._claim = None  # its lease runs out and the reaper returns it to pending
        reason = self.fleet.damage_reason(err)
        if reason != self._damage_said:
            log.error("claiming paused: %s", reason)
            self._damage_said = reason
        try:
            self.fleet.publish("paused", note=reason)
        except redis.RedisError:
            pass
        if burst:
            self.fleet.exit_code = StoreError.exit_code
            return True
        self._wait_unless_stopped(DAMAGE_RETRY_S)
        return False

    def _wait_unless_stopped(self, seconds: float) -> None:
        """Sleep ``seconds``, in slices, so a stop request (a flag) ends it within one. Not the
        events stream: the hand-back of a claim that met the damage wakes it at once."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _hand_back_unstarted(self) -> None:
        """Stopped with a claim whose job never started: it returns to pending, uncounted."""
        attempt = self._attempt
        self.fleet.completion.complete(self._claim, Outcome.INTERRUPTED, None, "worker stopped before the job started",
                                       attempt.out_dir if attempt else "")
        self._claim = None
        self._end_attempt()

    def _end_attempt(self) -> None:
        attempt, self._attempt = self._attempt, None  # first: a warm stop's handler must not write to a closed fd
        close_pipe(attempt)

    def _beat(self, set_idle: bool) -> bool:
        """rq's heartbeat (and, entering the wait, rq's and fleet's idle state), a read of
        fleet's drain flag and the pop of ids rq requeued, in one round trip: as separate calls
        they were over 1 ms of every job's dispatch. Returns whether `fleet drain` asked this
        worker to claim no more."""
        from rq.worker import WorkerStatus

        pipe = self.connection.pipeline(transaction=False)
        said_idle = None
        if set_idle:
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            said_idle = self.fleet.publish_into(pipe, "idle")
        self.heartbeat(pipeline=pipe)
        queue_drain_read(pipe, self.fleet.keys, self.fleet.worker_name)
        pop_requeued(pipe, self.fleet.queue.key)
        *_, drain, requeued = pipe.execute()
        if said_idle:
            said_idle()
        if requeued:
            absorb_rq_requeues(self.connection, self.fleet.keys, self.fleet.queue.key, popped=requeued)
        return drain == b"1"

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        """rq heartbeats right after each job, and fleet's dequeue beats a moment later: after a
        job, that plain heartbeat is fleet's whole beat (idle state too, so `fleet status`
        never shows a finished job as busy while rq is suspended), one round trip instead of three."""
        if self._after_job and pipeline is None and timeout is None:
            self._after_job = False
            try:
                self._beaten = (self._beat(set_idle=True), time.monotonic())
            except UNREACHABLE as err:  # the dequeue's own beat retries it, waiting Redis out
                log.warning("heartbeat after the job failed, Redis unreachable (%s)", type(err).__name__)
            return
        super().heartbeat(timeout, pipeline)

    # -- execution ------------------------------------------------------------------
    def execute_job(self, job: Job, queue: Queue) -> None:
        claim, attempt = self._claim, self._attempt
        if self._fleet_kill_reason is Outcome.INTERRUPTED or self._stop_requested:  # a stop before the fork
            self._hand_back_unstarted()
            return
        try:
            super().execute_job(job, queue)
        except UNREACHABLE as err:
            log.warning("Redis went away while %s ran (%s); its result is kept until Redis returns",
                        job.id, type(err).__name__)
        self._end_leftovers(job.id)
        handoff = execute.receive_result(attempt.receive_fd)
        result = handoff.result if handoff else None
        if self._fleet_kill_reason:
            outcome, exit_code, reason = self._fleet_kill_reason, None, f"worker: {self._fleet_kill_reason}"
            if self._fleet_kill_reason is not Outcome.INTERRUPTED:
                self._fleet_kill_reason = None  # lost/canceled end this job only; a cold stop ends the worker
        elif result is not None:
            outcome, exit_code, reason = Outcome(result.outcome), result.exit_code, result.reason
        else:
            outcome, exit_code, reason = Outcome.CRASHED, None, "the work horse died before recording a result"
        if outcome is not Outcome.LOST:
            self.fleet.completion.complete(claim, outcome, exit_code, reason, attempt.out_dir, attempt.resumed_from)
        self.fleet.completion.catch_up(attempt, handoff)
        self.fleet.completion.compact(claim.job_id, claim.attempt)
        self._claim = None
        self._end_attempt()
        self._cancel_seen = None
        self._after_job = True  # rq's heartbeat, next, says idle

    def perform_job(self, job: Job, queue: Queue, execution) -> bool:
        """In the work horse: :func:`worker.execute.run_claimed` gets the attempt this worker
        prepared as its argument. Only the horse's copy of rq's job holds it: rq's record keeps
        the payload as enqueued (the attempt's env and Redis URL never reach Redis), because the
        payload is decoded first and the attempt added after, past rq's re-encoding setter."""
        attempt = self._attempt
        if attempt is not None and job.id == attempt.job_id and job.func_name == RQ_FUNC:
            job._kwargs = {**job.kwargs, "attempt": attempt}
        return super().perform_job(job, queue, execution)

    def _end_leftovers(self, job_id: str) -> None:
        """End whatever the attempt left running, before its end is recorded and the job can be
        claimed again. The horse ends the job's tree itself; a horse that died (SIGKILL, the OOM
        killer) could not, and the job's processes, reparented to this worker (it reaps its
        descendants' orphans), would run on beside the job's next attempt. With the horse reaped,
        every child this worker has is such a process."""
        ended = end_adopted()
        if ended:
            log.warning("ended %d process(es) of job %s that outlived its work horse", ended, job_id)

    def handle_exception(self, job: Job, *exc_info) -> None:
        """A failed attempt is expected business, logged once by fleet: skip rq's traceback for it
        (rq's failed registry still records it, so rq info and rq-dashboard show the failure)."""
        from rq.job_lifecycle import call_exception_handlers

        if exc_info and isinstance(exc_info[1], execute.AttemptFailed):
            self._attempt_failure = exc_info[1]  # handle_job_failure, next, files it as it ended
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string: str = "",
                           execution=None) -> None:
        """rq's failure bookkeeping (in the horse), told the truth: the job's exc_info is the end
        of its output, and an attempt canceled in fleet lands in rq's canceled registry with
        status canceled, not among the failures rq info and rq-dashboard count."""
        failure, self._attempt_failure = self._attempt_failure, None
        if failure is not None:
            exc_string = failure.rq_text
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if failure is not None and failure.outcome is Outcome.CANCELED:
            from rq.job import JobStatus
            from rq.registry import CanceledJobRegistry, FailedJobRegistry

            try:
                pipe = self.connection.pipeline(transaction=True)
                FailedJobRegistry(job.origin, connection=self.connection).remove(job, pipeline=pipe)
                CanceledJobRegistry(job.origin, connection=self.connection).add(job, pipeline=pipe)
                job.set_status(JobStatus.CANCELED, pipeline=pipe)
                pipe.execute()
            except UNREACHABLE as err:  # fleet's own record says canceled; rq's stays failed
                log.warning("job %s: could not file it as canceled in rq's registries (%s)", job.id,
                            type(err).__name__)

    def maintain_heartbeats(self, job: Job, execution) -> None:
        """Every renewal interval while a job runs: rq's heartbeat, fleet's lease and registry
        entry, and a turn as reaper, so leases of dead workers are recovered, and a reaper gap
        is never mistaken for an outage, while every worker is busy and no receiver runs."""
        sdnotify.keepalive()
        try:
            super().maintain_heartbeats(job, execution)
            status = self.fleet.claims.renew(self._claim.job_id, self.fleet.worker_name, self._claim.attempt)
            self.fleet.publish("draining" if self._stop_requested else "busy", self._claim.job_id)
            self.fleet.claims.reap(every_s=self.job_monitoring_interval)
        except UNREACHABLE as err:
            log.warning("heartbeat failed, Redis unreachable (%s); the job keeps running", type(err).__name__)
            return
        except (StoreError, redis.ResponseError) as err:  # the job runs on; its end waits for the repair
            why = self.fleet.damage_reason(err)
            if why != self._damage_said:
                log.error("heartbeat failed on a damaged store; the job keeps running: %s", why)
                self._damage_said = why
            return
        if status == "lost":
            log.error("lease on %s was lost (reaped after missed heartbeats); stopping it so it never runs "
                      "twice at once", job.id)
            self._stop_for(Outcome.LOST)
        elif status == "cancel":
            # The horse sees the request within CANCEL_CHECK_S and stops the job gently (SIGTERM,
            # then SIGKILL after the grace); killing outright is for a horse that did not.
            now = time.monotonic()
            if self._cancel_seen is None:
                self._cancel_seen = now
                log.info("cancel requested for %s; its work horse is stopping it", job.id)
            elif now - self._cancel_seen > KILL_GRACE_S + 2 * execute.CANCEL_CHECK_S:
                log.warning("cancel of %s: still running %.0fs after the request; killing its process group",
                            job.id, now - self._cancel_seen)
                self._stop_for(Outcome.CANCELED)

    def _stop_for(self, reason: Outcome) -> None:
        self._fleet_kill_reason = reason
        self.kill_horse()

    def kill_horse(self, sig=None) -> None:
        """Kill the job's own process group (it left the horse's) and then the horse."""
        import signal as signal_mod

        if self.horse_pid:
            try:
                for child in psutil.Process(self.horse_pid).children():
                    kill_tree(child.pid, signal_mod.SIGKILL)
            except psutil.Error as err:
                log.debug("horse %s gone before its job tree could be listed: %s", self.horse_pid, err)
        if sig is None:
            super().kill_horse()
        else:
            super().kill_horse(sig)

    stop_now = False  # --stop-now: the first SIGTERM already interrupts the job

    def _install_signal_handlers(self) -> None:
        if not self.stop_now:
            return super()._install_signal_handlers()
        import signal as signal_mod

        signal_mod.signal(signal_mod.SIGINT, self.request_force_stop)
        signal_mod.signal(signal_mod.SIGTERM, self.request_force_stop)

    def request_force_stop(self, signum, frame) -> None:
        """Second SIGTERM (or --stop-now): stop the job and hand it back to pending promptly.

        Unlike rq's cold stop this never raises from the signal handler (an exception
        landing between a claim and the fork would drop the claim): it sets flags and
        kills the horse if there is one; the loop records the attempt as interrupted.
        """
        log.warning("cold stop: interrupting the current job and returning it to pending")
        self._stop_requested = True
        self._fleet_kill_reason = Outcome.INTERRUPTED
        attempt = self._attempt
        if attempt is not None and attempt.stop_write_fd >= 0:
            # Also told through the stop pipe (async-signal-safe), which the horse reads during a
            # warm stop's grace: the job ends now even where the kill below does not reach it.
            try:
                os.write(attempt.stop_write_fd, execute.COLD_STOP)
            except OSError:
                pass
        if self.horse_pid:
            self.kill_horse()
            log.info("cold stop: killed work horse %s and its job", self.horse_pid)
        else:
            log.info("cold stop: no work horse running")

    def _shutdown(self) -> None:
        """rq's warm stop, minus its StopRequested when idle: flags only, the loop ends itself."""
        self._stop_requested = True

    def register_birth(self) -> None:
        """rq refuses a name whose previous owner never registered its death (SIGKILL, power loss)
        until its key expires (minutes). fleet's own heartbeat says whether that owner is alive:
        a stale record is cleared so `Restart=always` with a fixed --name works at once. Whether
        that owner is alive was judged before this worker (or its slots) started
        (worker.naming.check_name_free, in `fleet worker`)."""
        from rq import worker_registration

        if self.connection.exists(self.key) and not self.connection.hexists(self.key, "death"):
            log.info("clearing the stale rq record of dead worker %s", self.name)
            worker_registration.unregister(self)
            self.connection.delete(self.key)
        super().register_birth()
        sdnotify.notify("READY=1")  # Type=notify: registered; each slot says it, systemd takes the first
        sdnotify.keepalive()

    def unsubscribe(self) -> None:
        """rq's, but the listener thread is told to stop *before* the UNSUBSCRIBE whose reply wakes
        it. In rq's order the reply can come first: the thread then waits for the next message
        (up to 60 s) and rq's join gives up after 1 s, so a worker's exit (each burst run, each
        systemctl stop) often took a second longer than it needed."""
        if self.pubsub_thread:
            self.pubsub_thread.stop()
        super().unsubscribe()

    def register_death(self) -> None:
        """A clean exit shows as stopped in `fleet status`, not as a dead worker."""
        try:
            self.fleet.publish("stopped")
        except UNREACHABLE:
            log.warning("could not mark worker %s stopped: Redis unreachable", self.name)
        super().register_death()

    def handle_warm_shutdown_request(self) -> None:
        """A warm stop (SIGTERM, `systemctl stop`): claim no more, and ask the running job to
        stop gently: its horse sends it SIGTERM and waits its stop_grace_s (a checkpoint's
        time), and the attempt ends interrupted, so the job goes back to pending, uncounted,
        and its next attempt resumes from that checkpoint (FLEET_RESUME_DIR). `fleet drain`
        is the way to let running jobs finish."""
        attempt = self._attempt
        if attempt is not None and attempt.stop_write_fd >= 0:
            # Written whether or not the horse is forked yet: a stop that lands between
            # execute_job's own check and the fork waits in the pipe for the horse's first poll
            # (before, it was dropped there and the job ran to its end after the warm stop).
            try:
                os.write(attempt.stop_write_fd, execute.WARM_STOP)  # async-signal-safe; read within a poll
            except OSError:
                pass  # the horse is gone already: its attempt is ending anyway
            log.info("warm stop: asking %s to stop (SIGTERM, then %gs to checkpoint), claiming no more "
                     "(SIGTERM again to kill it now)", attempt.name, attempt.stop_grace_s)
        else:
            log.info("warm stop: claiming no more")
        # No Redis here: this runs in a signal handler, maybe in the middle of the main loop's
        # own Redis call. The loop's next heartbeat says "draining" (a busy worker's says so
        # while _stop_requested), and the exit says "stopped".
