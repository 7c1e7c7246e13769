"""Recording how an attempt ended, and sending what its horse could not.

An attempt's end is recorded exactly once and never dropped: through a Redis outage or
a damaged store the worker waits and retries rather than lose a result (the lease keeps
the job from running twice meanwhile). What the horse could not send as it ended (the
last lines of its log and metrics streams, its artifact manifest) is sent from here once
Redis answers again.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

import redis

from scheduler import sdnotify
from scheduler.errors import StoreError
from scheduler.keys import Keys
from scheduler.runs_layout import manifest_file
from scheduler.states import JobState, Outcome
from scheduler.store.claims import Claim, Claims
from scheduler.store.errors import UNREACHABLE
from scheduler.store.running import save_artifacts
from scheduler.store.streams import compact_attempt

from .attempt import Attempt
from .execute import Handoff
from .output_stream import LogStreamer
from .runner import read_summary

log = logging.getLogger("fleet.worker")
DAMAGE_RETRY_S = 5.0  # how often a worker paused on a damaged store looks again


class Completion:
    """One worker's recorder of attempt ends."""

    def __init__(self, redis_client, keys: Keys, claims: Claims, worker_name: str,
                 damage_reason: Callable[[Exception], str], publish: Callable[..., None]):
        self.redis = redis_client
        self.keys = keys
        self.claims = claims
        self.worker_name = worker_name
        self._damage_reason = damage_reason  # words for a damaged store, from the worker that looked
        self._publish = publish  # the worker's registry entry, which shows why it waits
        self.names: dict[str, str] = {}  # job id -> name, for the log line of its end (set at its start)

    def complete(self, claim: Claim, outcome: Outcome, exit_code: int | None, reason: str,
                 out_dir: str = "", resumed_from: int | None = None) -> None:
        """Record the attempt's end, waiting out a Redis outage or a damaged store (the script
        writes nothing over a foreign value: see finish.lua) rather than losing the result.
        ``out_dir``: the attempt's, when it got one (its result.json becomes the job's result);
        ``resumed_from``: the earlier attempt whose output dir it was given (`fleet job` shows it)."""
        backoff = 0.5
        damage_said = None
        while True:
            sdnotify.keepalive()  # waiting out an outage is not being stuck
            try:
                ended = self.claims.complete(claim.job_id, claim.attempt, self.worker_name, outcome, exit_code,
                                             reason, out_dir, read_summary(out_dir) if out_dir else None,
                                             resumed_from)
                break
            except UNREACHABLE as err:
                log.warning("cannot record %s of %s yet (%s); retrying in %.1fs", outcome.value, claim.job_id,
                            type(err).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            except (StoreError, redis.ResponseError) as err:
                why = self._damage_reason(err)
                if why != damage_said:
                    log.error("cannot record %s of %s until the store is repaired, retrying every %.0fs: %s",
                              outcome.value, claim.job_id, DAMAGE_RETRY_S, why)
                    damage_said = why
                    try:
                        self._publish("paused", claim.job_id, note=f"cannot record its job's end: {why}")
                    except redis.RedisError:
                        pass
                time.sleep(DAMAGE_RETRY_S)
        if damage_said:
            log.info("recorded %s of %s: the store reads as fleet's again", outcome.value, claim.job_id)
        name = self.names.pop(claim.job_id, claim.job_id)
        if ended is None:
            log.warning("attempt %d of %s (%s) ended (%s) after its lease was lost; result not recorded",
                        claim.attempt, name, claim.job_id[:8], outcome.value)
        else:
            log.info("%s (%s) attempt %d: %s -> %s%s", name, claim.job_id[:8], claim.attempt, outcome.value,
                     ended.state.value, f" ({reason})" if reason else "")
            if ended.state is JobState.PENDING and outcome is not Outcome.INTERRUPTED:
                log.info("%s (%s) will be retried", name, claim.job_id[:8])

    def compact(self, job_id: str, attempt: int) -> None:
        """Shrink the ended attempt's streams to their size (streams.compact_attempt); a failure
        costs only memory, so it is logged and the worker goes on."""
        try:
            compact_attempt(self.redis, self.keys, job_id, attempt)
        except redis.RedisError as err:
            log.debug("could not compact the streams of %s attempt %d: %s", job_id, attempt, err)

    def catch_up(self, attempt: Attempt, handoff: Handoff | None) -> None:
        """Send what the horse could not (Redis was away when the attempt ended), once Redis
        answered again: the rest of its log and metrics streams, so `fleet metrics` keeps the
        whole history, and its artifact manifest (also when the horse died without saying)."""
        if handoff is not None:
            self._send_unsent(handoff.unsent)
        if handoff is None or handoff.artifacts_unsent:
            self._backfill_artifacts(attempt)

    def _send_unsent(self, positions: list[list]) -> None:
        for position in positions:
            try:
                streamer = LogStreamer.resume(self.redis, position)
            except (ValueError, TypeError, AttributeError):
                log.warning("ignoring a malformed stream position from the work horse: %r", position)
                continue
            if not streamer.flush():
                log.warning("the last lines of %s stay in %s only (Redis unreachable)", streamer.key, streamer.path)

    def _backfill_artifacts(self, attempt: Attempt) -> None:
        """The horse hashes the outputs and stores the manifest in Redis; if Redis was away at that
        moment, the copy it left on disk is stored now, so `fleet verify` has something to check."""
        try:
            with open(manifest_file(attempt.out_dir), "rb") as fh:
                raw = fh.read()
            json.loads(raw)
            save_artifacts(self.redis, attempt.artifacts_key, raw, only_if_absent=True)
        except FileNotFoundError:
            return
        except (OSError, ValueError, *UNREACHABLE) as err:
            log.warning("artifact manifest of %s attempt %d not stored (%s)", attempt.job_id, attempt.number,
                        type(err).__name__)
