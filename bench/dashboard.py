"""The dashboard's fleet page API at 100 and 100,000 jobs: Redis round trips and response time.

What the fleet page fetches each second: ``/api/status`` (`fleet status --json`) and one page
of ``/api/jobs`` (50 rows with REASON, ELAPSED and PROGRESS). Round trips are counted at the
socket on the in-process app (common.trips_and_median_ms; the HTTP layer sends none of its
own); response times are measured over HTTP against the real server (scheduler/dashboard/
server.py), as a browser sees them. Targets: the same round trips at both sizes, and a
response under 200 ms at 100,000 jobs.

usage: python bench/dashboard.py [--sizes 100,100000] [--repeat 20]
"""

from __future__ import annotations

import statistics
import time
import urllib.request

from common import at_sizes, build_manifest, jobs_manifest, store_on, trips_and_median_ms

from scheduler.client import Client
from scheduler.dashboard.app import Dashboard
from scheduler.dashboard.server import make_server, serve_in_thread, url_of

ROUTES = {"/api/status": "", "/api/jobs": "limit=50", "/api/jobs (state=pending)": "state=pending&limit=50"}


def measure(url: str, size: int, repeat: int) -> dict[str, tuple[int, float, float]]:
    store = store_on(url)
    store.redis.flushall()
    store.load(build_manifest(jobs_manifest(size)))
    dashboard = Dashboard(Client(store=store))
    server = make_server(dashboard, "127.0.0.1", 0)
    serve_in_thread(server)
    base = url_of(server).rstrip("/")
    out = {}
    try:
        for label, query in ROUTES.items():
            path = label.split(" ")[0]
            assert dashboard.handle(path, query).status == 200
            trips, in_process = trips_and_median_ms(lambda: dashboard.handle(path, query), repeat)
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                with urllib.request.urlopen(f"{base}{path}?{query}") as reply:
                    reply.read()
                samples.append((time.perf_counter() - t0) * 1000)
            out[label] = (trips, in_process, statistics.median(samples))
    finally:
        server.shutdown()
        server.server_close()
    return out


def main() -> None:
    sizes, results = at_sizes("dashboard fleet page API, 50 constraint classes, no worker registered", measure)
    for label in ROUTES:
        base = results[sizes[0]][label][2]
        for size in sizes:
            trips, in_process, http = results[size][label]
            print(f"  {label:>26}, jobs={size:>7}: {trips} round trips, median {in_process:.2f} ms in process, "
                  f"{http:.2f} ms over HTTP ({http / base:.2f}x)")


if __name__ == "__main__":
    main()
