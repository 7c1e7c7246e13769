"""Shared bench plumbing: a private redis-server, manifests of N jobs over K classes, timing stats."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scheduler.keys import Keys  # noqa: E402
from scheduler.manifest.loader import _Validator  # noqa: E402
from scheduler.settings import Settings  # noqa: E402
from scheduler.store import Store  # noqa: E402


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def jobs_manifest(n: int, classes: int = 50, command: list[str] | None = None) -> dict:
    """n jobs spread round-robin over `classes` constraint classes (distinct min_ram_gib)."""
    defaults = {"min_cores": 0}
    if command:
        defaults["command"] = command
    return {"schema_version": 1, "defaults": defaults,
            "jobs": [{"name": f"j{i}", "model": "bench", "seed": i, "min_ram_gib": 1 + i % classes,
                      "priority": i % 3} for i in range(n)]}


def build_manifest(data: dict):
    """Validate without TOML text (the bench measures the store, not the parser)."""
    return _Validator("bench.toml", data).run()


def store_on(url: str, namespace: str = "fleet") -> Store:
    return Store.connect(Settings(redis_url=url, namespace=namespace))


def stats_ms(samples: list[float]) -> tuple[float, float]:
    """(median, p99) in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


__all__ = ["Keys", "build_manifest", "jobs_manifest", "machine", "stats_ms", "store_on", "timed"]
