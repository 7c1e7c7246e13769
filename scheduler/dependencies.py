"""The three kinds of dependency a job may declare, as Slurm's, and the one rule of when each is met.

``after`` (Slurm's afterok) waits for the parent to finish; ``after_any`` (afterany) for it
to end in any way, finished, failed for good or canceled (clean-up and report jobs);
``after_failed`` (afternotok) for it to fail for good (alerts). An edge that can no longer
be met (``after`` on a failed parent, ``after_failed`` on a finished or canceled one, any
edge on a blocked parent, which never ends) blocks the child and its descendants; retrying
or rerunning the parent unblocks them. The store keeps each non-``after`` edge's kind in the
child's record (``dep_kinds``) and scheduler/store/lua/deps.lua applies the same rule.
"""

from __future__ import annotations

from typing import Any, Mapping

from .states import JobState

DEPENDENCY_FIELDS = ("after", "after_any", "after_failed")
# The word the store keeps per edge (deps.lua compares it), by manifest field.
STORE_KIND = {"after": "ok", "after_any": "any", "after_failed": "failed"}


def parents_of(spec: Mapping[str, Any]) -> dict[str, str]:
    """Each parent's name -> the field that names it, in the order the fields list them."""
    out: dict[str, str] = {}
    for field in DEPENDENCY_FIELDS:
        for name in spec.get(field) or []:
            out.setdefault(name, field)
    return out


def edge_met(field: str, parent_state: JobState | str) -> bool | None:
    """Whether a ``field`` edge is met by a parent now in ``parent_state``: True (met), False
    (it never can be, as things stand), None (not yet: the parent has not ended)."""
    try:
        state = JobState(parent_state)
    except ValueError:  # a state fleet did not write: not met, and not known never to be
        return None
    if state is JobState.FINISHED:
        return field != "after_failed"
    if state is JobState.FAILED:
        return field != "after"
    if state is JobState.CANCELED:
        return field == "after_any"
    if state is JobState.BLOCKED:
        return False
    return None


def waiting_words(field: str) -> str:
    """What a child waits for, in explain's words."""
    return {"after": "to finish", "after_any": "to end", "after_failed": "to fail"}[field]
