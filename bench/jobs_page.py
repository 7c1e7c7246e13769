"""`fleet jobs` cost at 100 and 100,000 jobs: Redis round trips and time of one page of 100 rows,
each with its REASON, ELAPSED and PROGRESS (scheduler/client.py Client.jobs).

Three pages: every job (the load-order index), two states merged (pending,held: two state
indexes read a page at a time), and a glob filter (model 'ben*': each candidate's record is
read). Round trips are counted at the socket (common.trips_and_median_ms); the target is
the same number at both sizes and time within 2x, as for `fleet status`.

usage: python bench/jobs_page.py [--sizes 100,100000] [--repeat 20]
"""

from __future__ import annotations

from common import at_sizes, build_manifest, jobs_manifest, store_on, trips_and_median_ms

from scheduler.client import Client

PAGES = {"all": {}, "pending,held": {"state": "pending,held"}, "model glob": {"model": "ben*"}}


def measure(url: str, size: int, repeat: int) -> dict[str, tuple[int, float]]:
    store = store_on(url)
    store.redis.flushall()
    store.load(build_manifest(jobs_manifest(size)))
    client = Client(store=store)
    out = {}
    for label, filters in PAGES.items():
        rows = client.jobs(limit=100, **filters)  # warm the connection
        assert len(rows) == min(100, size) and all(r["reason"] == "No live worker" for r in rows)
        out[label] = trips_and_median_ms(lambda: client.jobs(limit=100, **filters), repeat)
    return out


def main() -> None:
    sizes, results = at_sizes("fleet jobs --limit 100, 50 constraint classes, no worker registered", measure)
    for label in PAGES:
        base = results[sizes[0]][label][1]
        for size in sizes:
            trips, median = results[size][label]
            print(f"  {label:>13}, jobs={size:>7}: {trips} round trips, median {median:.2f} ms ({median / base:.2f}x)")


if __name__ == "__main__":
    main()
