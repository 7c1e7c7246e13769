"""The job identity rule: ``job_id`` is a content hash of what a job *is*.

Rule (documented in the README and pinned by ``tests/test_identity.py``):

1. Take the job's identity fields after ``[defaults]`` are applied: ``model``,
   ``mode`` (when set), ``hyper``, ``seed``, and every lab field declared in
   ``[defaults]``. Scheduling fields (name, priority, constraints, after,
   max_attempts, timeout_s, command, entrypoint) are excluded, so renaming or
   reprioritising a job never makes it a new job and never reruns it.
2. Add ``"schema_version": 1``.
3. Normalise numbers: a float with an integral value becomes an int, so ``1`` and
   ``1.0`` hash the same; other floats keep Python's shortest round-trip repr.
   Booleans stay booleans (``true`` is not ``1``).
4. Serialise as JSON with sorted keys, separators ``,`` and ``:``, non-ASCII kept
   as UTF-8; ``job_id`` is the first 16 hex digits of its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Mapping

JOB_ID_LENGTH = 16
JOB_ID_RE = re.compile(rf"[0-9a-f]{{{JOB_ID_LENGTH}}}")  # what compute_job_id returns


def normalise(value: Any) -> Any:
    """Canonical form of a TOML value for hashing (hot on big loads: exact-type dispatch first)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("nan and inf cannot be part of a job's identity")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    return value


def canonical_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(normalise(dict(payload)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_job_id(identity: Mapping[str, Any], schema_version: int) -> str:
    """The stable id of a job with these identity fields (see the module docstring)."""
    payload = dict(identity)
    payload["schema_version"] = schema_version
    digest = hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
    return digest[:JOB_ID_LENGTH]


def digest(payload: Any) -> str:
    """A short content digest for change detection (scheduling fields, classes)."""
    text = json.dumps(normalise(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
