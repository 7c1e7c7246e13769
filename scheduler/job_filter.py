"""Which jobs an operator means: ``--state pending,held --model 'transformer*' --host gpu1``.

One filter serves ``fleet jobs`` and the actions that take filters in place of job names
(``fleet hold --model 'cnn*' --state pending``), so the jobs a hold touches are exactly the
jobs ``fleet jobs`` lists with the same flags. Globs are ``fnmatch`` patterns, case-sensitive,
as a manifest's ``allowed_hosts`` and ``allow_jobs`` are. Pure: the store pages through the
indexes (scheduler/store/queries.py JobQueries.ids_in_states) and this decides.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from .errors import UsageError
from .states import JobState

if TYPE_CHECKING:
    from .store.queries import JobRecord

ORPHANED = "orphaned"  # not a state: a job the manifest no longer lists, counted by `fleet status`
FILTER_STATES = tuple(s.value for s in JobState) + (ORPHANED,)


def parse_states(text: str | None) -> tuple[str, ...]:
    """``"pending,held"`` as ("pending", "held"); an unknown word is a UsageError naming it and
    the states there are."""
    if not text:
        return ()
    states = []
    for word in (w.strip() for w in text.split(",")):
        if word not in FILTER_STATES:
            close = difflib.get_close_matches(word, FILTER_STATES, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--state {word!r}: no such state{hint}; give one or more of "
                             f"{', '.join(FILTER_STATES)}, comma-separated")
        if word not in states:
            states.append(word)
    return tuple(states)


@dataclass(frozen=True)
class JobFilter:
    """The jobs whose state is one of ``states`` (any when empty) and whose name, model, last
    host and last worker match the globs given (None: any)."""

    states: tuple[str, ...] = ()
    name: str | None = None
    model: str | None = None
    host: str | None = None
    worker: str | None = None

    @property
    def empty(self) -> bool:
        """True when it selects every job: an action refuses that rather than touch them all."""
        return not (self.states or self.name or self.model or self.host or self.worker)

    @property
    def needs_records(self) -> bool:
        """Whether anything beyond the state indexes decides (each candidate's record is read)."""
        return bool(self.name or self.model or self.host or self.worker)

    def matches(self, record: "JobRecord") -> bool:
        """Whether ``record`` passes the globs (its state was chosen by the index it came from)."""
        return (_glob(self.name, record.name) and _glob(self.model, record.model)
                and _glob(self.host, record.host) and _glob(self.worker, record.worker))


def _glob(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatchcase(value, pattern))
