"""Shared bench plumbing: a private redis-server, manifests of N jobs over K classes, timing stats."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

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


def run_burst_worker(url: str, tmp: str, slots: int, name: str) -> None:
    """One `fleet worker --burst --slots N` on a simulated 8-core, 32 GiB host, to its exit."""
    profile = os.path.join(tmp, "host.toml")
    with open(profile, "w") as fh:
        fh.write('hostname = "bench"\ncuda = false\ncores = 8\nram_gib = 32\n')
    subprocess.run([sys.executable, "-m", "scheduler.cli", "worker", "--burst", "--slots", str(slots),
                    "--host-profile", profile, "--runs-dir", os.path.join(tmp, "runs"), "--name", name],
                   check=True, env=dict(os.environ, FLEET_REDIS_URL=url, PYTHONPATH=REPO),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stats_ms(samples: list[float]) -> tuple[float, float]:
    """(median, p99) in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def trips_and_median_ms(call, repeat: int) -> tuple[int, float]:
    """How many round trips one ``call()`` sends to Redis (every packed command or pipeline
    redis-py sends, counted at the socket), and its median time over ``repeat`` calls; the
    caller has warmed the connection and scripts with one call first."""
    import redis.connection

    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent[0] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        call()
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return sent[0], stats_ms(samples)[0]


def at_sizes(title: str, measure) -> tuple[list[int], dict]:
    """The --sizes and --repeat of a bench that compares one measure at two store sizes: prints
    the title with the machine, then runs ``measure(url, size, repeat)`` for each size on one
    private redis-server; returns the sizes and each size's result."""
    import argparse

    from scheduler.embedded_redis import RedisServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,100000")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{title} ({machine()})")
    with RedisServer() as server:
        return sizes, {size: measure(server.url, size, args.repeat) for size in sizes}


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


__all__ = ["REPO", "Keys", "build_manifest", "jobs_manifest", "machine", "run_burst_worker", "stats_ms", "store_on",
           "timed"]
