"""What a running attempt's work horse (and its worker, catching up) reads and writes.

The horse runs on rq's connection, not a Store: these take the client it has and the
keys its :class:`worker.attempt.Attempt` carries (built by scheduler/keys.py).
"""

from __future__ import annotations


def cancel_requested(client, job_key: str) -> bool:
    """Whether `fleet cancel` asked to stop the job of record ``job_key`` while it runs."""
    return client.hget(job_key, "cancel_requested") == b"1"


def save_artifacts(client, artifacts_key: str, manifest_json: str | bytes, only_if_absent: bool = False) -> None:
    """Store an attempt's artifact manifest (what `fleet verify` checks); ``only_if_absent`` for
    the worker's catch-up, which must never replace what the horse stored."""
    client.set(artifacts_key, manifest_json, nx=only_if_absent)
