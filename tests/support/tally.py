"""What the reliability tests did, counted: faults injected, hostile inputs, jobs run, and
the two numbers that must stay zero (jobs lost, jobs run twice at once).

Each test asserts its own promise; the tally only adds up what the passing tests
checked, and pytest prints it at the end of the run (tests/conftest.py), so a
change that stops a test from injecting its faults shows up as a smaller count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    faults: Counter = field(default_factory=Counter)  # kind of fault -> times injected
    hostile_inputs: int = 0
    jobs: int = 0
    attempts: int = 0
    lost: int = 0
    twice_at_once: int = 0

    def fault(self, kind: str, times: int = 1) -> None:
        self.faults[kind.split(" (")[0]] += times

    def hostile(self, inputs: int = 1) -> None:
        self.hostile_inputs += inputs

    def ran(self, jobs: int, attempts: int, lost: int = 0, twice_at_once: int = 0) -> None:
        """Jobs a test ran to their end and checked; ``lost`` and ``twice_at_once`` as it counted them."""
        self.jobs += jobs
        self.attempts += attempts
        self.lost += lost
        self.twice_at_once += twice_at_once

    def lines(self) -> list[str]:
        if not (self.faults or self.hostile_inputs or self.jobs):
            return []
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.faults.items()))
        return [f"faults injected: {sum(self.faults.values())} ({kinds or 'none'})",
                f"hostile inputs tried: {self.hostile_inputs}",
                f"jobs run and checked: {self.jobs} ({self.attempts} attempts)",
                f"jobs lost: {self.lost}; jobs run twice at once: {self.twice_at_once}"]


TALLY = Tally()
