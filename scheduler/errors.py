"""One error family per failure kind; the CLI maps each family to an exit code.

Everything fleet raises on purpose derives from :class:`FleetError`, so the CLI edge
can catch exactly that, print ``str(err)`` as one line and exit with ``err.exit_code``
while real bugs still surface as tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_OPERATIONAL = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


class FleetError(Exception):
    """Base of every error fleet raises deliberately."""

    exit_code = EXIT_OPERATIONAL


class UsageError(FleetError):
    """A bad command-line argument or option value."""

    exit_code = EXIT_USAGE


class ConfigError(FleetError):
    """Settings (Redis URL, namespace, environment) that cannot work."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located precisely enough to fix it."""

    file: str
    message: str
    job: str | None = None  # "jobs[3] 'cnn-realistic'" style locator, or a host locator
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.job:
            where.append(self.job)
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}"


class ManifestError(FleetError):
    """A manifest was rejected; carries every problem found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems in manifest; nothing was loaded:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class StoreError(FleetError):
    """Redis is unreachable, or holds something fleet did not write."""

    exit_code = EXIT_OPERATIONAL


class NotFoundError(FleetError):
    """A job, worker or file the user named does not exist."""

    exit_code = EXIT_NOT_FOUND


class ProbeError(FleetError):
    """The host could not be described (bad host profile, impossible probe result)."""

    exit_code = EXIT_USAGE
