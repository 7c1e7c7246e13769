"""Claim cost vs backlog, and claims/s vs the wire (PING/s), on one private redis-server.

Prints median and p99 per-claim time at 100, 10,000 and 100,000 pending jobs over
50 constraint classes (each backlog in a namespace of its own on one server, their claims
taken in interleaved rounds) once Redis has settled after the loads, and the ratio of each
to the 100-job figure (target: the 100,000 figure within 1.5x); also the median of the
first claims straight after each load. Then claims/s from one process against redis-py
PING/s in the same run (target: >= 0.5x, i.e. one round trip per claim).

usage: python bench/claim_cost.py [--sizes 100,10000,100000] [--claims 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from common import build_manifest, jobs_manifest, machine, stats_ms, store_on, timed

from scheduler.embedded_redis import RedisServer
from scheduler.matching import ConstraintClass
from scheduler.resources import HostResources
from scheduler.store.claims import Claims

HOST = HostResources("bench", cores=10**6, ram_total_gib=10**9, ram_available_gib=10**9)


SETTLE_S = 3.0


def load_backlog(url: str, size: int, claims_n: int) -> tuple[tuple[float, ...], Callable[[], float]]:
    """Load ``size`` jobs into a namespace of their own; returns the median of the first claims
    right after the load, the load's time and the part of it Redis spent in the load's script,
    and a function that makes one claim on this backlog and returns how long it took. A big
    load grows Redis's main dictionary and Redis rehashes it incrementally for a second or two
    afterwards, slowing every command; the first claims show that transient, the settled ones
    (main) what a running fleet sees."""
    store = store_on(url, namespace=f"b{size}")
    manifest = build_manifest(jobs_manifest(size))
    store.redis.config_resetstat()
    _, load_s = timed(store.load, manifest)
    # The load's one script: while it runs Redis serves no one else (BUSY after lua-time-limit).
    load_blocked_s = store.redis.info("commandstats")["cmdstat_evalsha"]["usec"] / 1e6
    classes = list({c.class_id: c for c in (ConstraintClass.of(j, {}) for j in manifest.jobs)}.values())
    claims = Claims(store.redis, store.keys)

    def one_claim() -> float:
        t0 = time.perf_counter()
        if claims.claim("bench", HOST, classes) is None:
            raise SystemExit(f"claim_cost: the {size}-job backlog ran out; pass fewer --claims")
        return time.perf_counter() - t0

    first = [one_claim() for _ in range(min(claims_n, size) // 4)]
    return (stats_ms(first)[0], load_s, load_blocked_s), one_claim


def settled_rounds(client, claimers: dict[int, Callable[[], float]], claims_n: int,
                   rounds: int = 5) -> dict[int, tuple[float, float, float]]:
    """Per backlog size: (median, p99) of its claims in ms and their mean time inside Redis
    (INFO commandstats: what the script itself costs, apart from the wire and the client), the
    sizes' claims taken in interleaved rounds, so that this VM's swings in speed (a third
    within minutes) fall on every size alike instead of on whichever was measured last."""
    samples: dict[int, list[float]] = {size: [] for size in claimers}
    inside: dict[int, list[float]] = {size: [] for size in claimers}
    order = list(claimers)
    for round_no in range(rounds):
        for size in order[round_no % len(order):] + order[:round_no % len(order)]:
            client.config_resetstat()
            settled_n = min(claims_n, size) - min(claims_n, size) // 4  # what the first claims left
            samples[size] += [claimers[size]() for _ in range(settled_n // rounds)]
            inside[size].append(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"] / 1000)
    return {size: (*stats_ms(samples[size]), statistics.median(inside[size])) for size in claimers}


def rate(call: Callable, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call()
        n += 1
    return n / (time.perf_counter() - t0)


def wire_rounds(url: str, claim: Callable, rounds: int = 5, seconds: float = 0.3) -> dict[str, float]:
    """Medians over interleaved rounds of claims/s, redis-py PING/s and an empty script's
    calls/s: on a noisy machine a single window of each moved the ratio by 1.5x.
    The empty script (EVALSHA of a script that does nothing, with a claim's keys and
    arguments) is the most a one-round-trip claim could reach from redis-py; the rest
    of the gap is the claim's own work."""
    client = store_on(url).redis
    script = client.register_script("return '{}'")
    args = ['{"now":0,' + '"x":"' + "p" * 400 + '"}', "," + ",".join(f"{i:012x}" for i in range(50)) + ","]
    keys = ["{b}:running", "{b}:ledger:h", "{b}:classes"]
    runs: dict[str, list[float]] = {"claim": [], "ping": [], "empty": []}
    for _ in range(rounds):
        runs["claim"].append(rate(claim, seconds))
        runs["ping"].append(rate(client.ping, seconds))
        runs["empty"].append(rate(lambda: script(keys=keys, args=args), seconds))
    return {kind: statistics.median(values) for kind, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--claims", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"claim cost vs backlog ({machine()}), 50 classes, {args.claims} claims each")
    with RedisServer() as server:
        client = server.client()
        loads, claimers = {}, {}
        for size in sizes:
            loads[size], claimers[size] = load_backlog(server.url, size, args.claims)
        time.sleep(SETTLE_S)
        settled = settled_rounds(client, claimers, args.claims)
        base = settled[sizes[0]][0]
        for size in sizes:
            (median, p99, in_redis), (first, load_s, load_blocked_s) = settled[size], loads[size]
            print(f"  pending={size:>7}: median {median:.3f} ms  p99 {p99:.3f} ms  ratio {median / base:.2f}x "
                  f"(inside Redis {in_redis:.3f} ms; first claims after the load: median {first:.3f} ms; "
                  f"load took {load_s:.2f}s, {load_blocked_s:.2f}s of it a script blocking Redis)")
        claim = claimers[sizes[-1]]
        wire = wire_rounds(server.url, claim)
        print(f"  claims/s {wire['claim']:.0f} vs PING/s {wire['ping']:.0f}: {wire['claim'] / wire['ping']:.2f}x "
              f"of the wire (medians of 5 interleaved rounds at {sizes[-1]} pending)")
        print(f"  (an empty script called like a claim: {wire['empty']:.0f}/s = {wire['empty'] / wire['ping']:.2f}x "
              f"of PING; the claim reaches {wire['claim'] / wire['empty']:.2f}x of that)")


if __name__ == "__main__":
    main()
