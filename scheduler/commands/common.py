"""What every command needs: the settings from flags and environment, and a connected store."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from ..settings import Settings, check_flags
from ..store import Store


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(getattr(args, "redis_url", None), getattr(args, "namespace", None))


def refuse_bad_flags(args: argparse.Namespace) -> None:
    """What :func:`settings_from` refuses in --redis-url / --namespace, for the paths that never
    build settings (load --offline, probe --offline or --manifest, demo): the same flag is
    not fine on one path and an error on another."""
    check_flags(getattr(args, "redis_url", None), getattr(args, "namespace", None))


def connect(args: argparse.Namespace) -> Store:
    return Store.connect(settings_from(args))


def print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def job_attempt(store: Store, ref: str, attempt: int | None):
    """The job ``ref`` names and one of its attempts (default: the latest), or NotFoundError saying why not."""
    from ..errors import NotFoundError

    record = store.jobs.get(store.jobs.resolve(ref))
    number = attempt or record.attempts
    if number < 1:
        raise NotFoundError(f"{record.name} has not started yet; `fleet explain {record.name}` says why")
    if number > record.attempts:
        raise NotFoundError(f"{record.name} has {record.attempts} attempt(s), not {number}")
    return record, number
