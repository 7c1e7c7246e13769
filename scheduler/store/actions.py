"""Operator actions on jobs (cancel, retry, hold, release) and on workers (drain)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..keys import Keys
from ..states import TRANSITIONS, script_names
from .errors import refusal
from .scripts import Scripts
from .workers import DRAIN_REASON_FIELD

ACTIONS = ("cancel", "retry", "rerun", "hold", "release")


@dataclass(frozen=True)
class ActionResult:
    job_id: str
    ok: bool
    from_state: str | None
    to_state: str | None
    message: str


def apply_action(redis, keys: Keys, action: str, job_ids: list[str], reset: bool = False,
        all_or_nothing: bool = True) -> list[ActionResult]:
    """Apply ``action`` to the jobs in one atomic step (actions.lua), each named once.

    All or nothing: a job the action does not apply to comes back not ok with the reason,
    and then nothing changes for any job (every result not ok); without ``all_or_nothing``
    (rq's requeues, each its own request) the others change. A key holding a value fleet
    did not write is a StoreError naming it, with nothing changed either way."""
    if action not in ACTIONS:
        raise ValueError(action)
    payload = {
        "action": action, "ids": list(dict.fromkeys(job_ids)), "now": time.time(), "reset": reset,
        "all_or_nothing": all_or_nothing,
        **keys.script_prefixes(), **script_names(),
        "transitions": {src.value: sorted(d.value for d in dst) for src, dst in TRANSITIONS.items()},
    }
    with refusal():
        raw = json.loads(Scripts(redis, ("actions",)).actions(keys=[keys.events], args=[json.dumps(payload)]))
    return [ActionResult(r["job_id"], bool(r["ok"]), r.get("from"), r.get("to"), r.get("message") or "")
            for r in (raw if isinstance(raw, list) else [])]


def drain(redis, keys: Keys, worker: str, undo: bool = False, reason: str = "") -> bool:
    """Ask a worker to finish its current job and claim no more (or, with ``undo``, to resume);
    ``reason`` is shown beside its state, as ``scontrol update state=drain reason=...``.

    A drained worker stays up and keeps heartbeating, as a drained Slurm node
    does, so a restart by systemd does not silently undo the drain.
    """
    if not redis.exists(keys.worker(worker)):
        return False
    redis.hset(keys.worker(worker), mapping={"drain": "0" if undo else "1", DRAIN_REASON_FIELD: "" if undo else reason})
    return True
