"""Job states, attempt outcomes and the one table of legal transitions.

Lua scripts use the same lower-case names (they receive them from Python, never
spell their own), and ``tests/test_states.py`` checks every script's transitions
against :data:`TRANSITIONS`.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"
    BLOCKED = "blocked"
    HELD = "held"

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # claim; cancel before it ran; hold; a parent failed for good or was canceled
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELED, JobState.HELD, JobState.BLOCKED}),
    # exit 0; exit != 0 or timeout with attempts left -> pending, else failed; lease lost -> pending/failed
    JobState.RUNNING: frozenset({JobState.FINISHED, JobState.FAILED, JobState.PENDING, JobState.CANCELED}),
    JobState.FINISHED: frozenset({JobState.PENDING}),  # `fleet rerun` only: a reload never reruns it
    JobState.FAILED: frozenset({JobState.PENDING}),  # fleet retry, fleet rerun
    JobState.CANCELED: frozenset({JobState.PENDING}),  # fleet retry, fleet rerun
    JobState.BLOCKED: frozenset({JobState.PENDING, JobState.CANCELED}),  # its blocking parent retried; cancel
    JobState.HELD: frozenset({JobState.PENDING, JobState.CANCELED, JobState.BLOCKED}),  # release; cancel; parent failed
}


class Outcome(str, Enum):
    """How an attempt ended; the same words finish.lua uses."""

    FINISHED = "finished"
    FAILED = "failed"  # non-zero exit
    TIMEOUT = "timeout"  # timeout_s ran out; the process group was killed
    CRASHED = "crashed"  # the runner itself died (horse killed, output dir unwritable)
    LOST = "lost"  # the lease expired: the worker or its host died
    INTERRUPTED = "interrupted"  # forced stop of the worker; goes back to pending, not counted
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value


# Outcomes that use up one of a job's max_attempts; finish.lua receives this set, never spells it.
COUNTED_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.CRASHED, Outcome.LOST})


def script_names() -> dict[str, object]:
    """The state and outcome names every Lua script receives in its payload: scripts compare
    against ``S.pending`` or ``O.lost``, never a literal of their own, so Python and Lua can't
    drift apart."""
    return {"states": {s.name.lower(): s.value for s in JobState},
            "outcomes": {o.name.lower(): o.value for o in Outcome},
            "counted": sorted(o.value for o in COUNTED_OUTCOMES)}
