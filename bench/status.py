"""`fleet status --json` cost at 100 and 100,000 jobs: Redis round trips and time.

Round trips are counted at the socket (every packed command or pipeline sent by
redis-py); the target is the same number at both sizes and time within 2x.

usage: python bench/status.py [--sizes 100,100000] [--repeat 20]
"""

from __future__ import annotations

from common import at_sizes, build_manifest, jobs_manifest, store_on, trips_and_median_ms

from scheduler.status import status_document


def measure(url: str, size: int, repeat: int) -> tuple[int, float]:
    store = store_on(url)
    store.redis.flushall()
    store.load(build_manifest(jobs_manifest(size)))
    status_document(store)  # warm the scripts and connection
    return trips_and_median_ms(lambda: status_document(store), repeat)


def main() -> None:
    sizes, results = at_sizes("fleet status --json, 50 constraint classes", measure)
    base = results[sizes[0]][1]
    for size, (trips, median) in results.items():
        print(f"  jobs={size:>7}: {trips} round trips, median {median:.2f} ms ({median / base:.2f}x)")


if __name__ == "__main__":
    main()
