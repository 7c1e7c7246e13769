"""Frozen specs a validated manifest becomes; everything else derives from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import Problem
from .fields import SCHEDULING_FIELDS
from .identity import compute_job_id, digest


@dataclass(frozen=True)
class HostSpec:
    """A ``[hosts.NAME]`` table: how the operator wants one host used."""

    name: str
    description: str = ""
    priority: int = 0
    allow_jobs: tuple[str, ...] = ()
    deny_jobs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "priority": self.priority,
            "allow_jobs": list(self.allow_jobs),
            "deny_jobs": list(self.deny_jobs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HostSpec":
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            priority=int(data.get("priority", 0)),
            allow_jobs=tuple(data.get("allow_jobs", ())),
            deny_jobs=tuple(data.get("deny_jobs", ())),
        )


@dataclass(frozen=True)
class JobSpec:
    """One job after defaults: its identity fields and its scheduling fields.

    ``identity`` and ``scheduling`` are plain dicts so they serialise as they are;
    treat them as read-only.
    """

    identity: dict[str, Any]
    scheduling: dict[str, Any]
    schema_version: int = 1
    index: int = field(default=0, compare=False)  # position in the manifest's [[jobs]]

    @classmethod
    def from_flat(cls, flat: dict[str, Any], schema_version: int = 1) -> "JobSpec":
        """Rebuild a spec from its flat form (``to_dict``), as the store keeps it."""
        return cls(identity={k: v for k, v in flat.items() if k not in SCHEDULING_FIELDS},
                   scheduling={k: v for k, v in flat.items() if k in SCHEDULING_FIELDS},
                   schema_version=schema_version)

    @cached_property
    def job_id(self) -> str:
        return compute_job_id(self.identity, self.schema_version)

    @property
    def name(self) -> str:
        return self.scheduling["name"]

    @property
    def model(self) -> str:
        return self.identity["model"]

    @property
    def mode(self) -> str | None:
        return self.identity.get("mode")

    @property
    def priority(self) -> int:
        return self.scheduling["priority"]

    def __getitem__(self, key: str) -> Any:
        """Any field by name, identity or scheduling (for placeholders and [allowed])."""
        if key in SCHEDULING_FIELDS:
            return self.scheduling[key]
        return self.identity[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Any]:
        """The whole spec as one flat table, as a manifest would write it."""
        return {**self.identity, **self.scheduling}

    @cached_property
    def scheduling_digest(self) -> str:
        """Changes when any scheduling field changes: what a reload compares to update in place."""
        return digest(self.scheduling)

    def locator(self) -> str:
        return f"jobs[{self.index}] {self.name!r}"


@dataclass(frozen=True)
class Manifest:
    path: str
    name: str
    schema_version: int
    hosts: dict[str, HostSpec]
    jobs: tuple[JobSpec, ...]
    defaults: dict[str, Any]
    allowed: dict[str, list[Any]]
    lab_fields: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = ()
    # Each [jobs.matrix] sweep (by its entry's locator, "jobs[3] '{model}-lr{hyper[lr]}'") and
    # the names of the jobs it expanded to, in order; a plan is shown per sweep as well.
    sweeps: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def job_named(self, name: str) -> JobSpec:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)
