"""The receiver killed mid-reload, and many concurrent reloads: the store is always one whole load.

"Nothing lost" here: after every fault the namespace holds exactly the jobs of
either the old or the new manifest (never a mix), every job sits in exactly one
state index, and the pending index holds exactly the pending, listed jobs.
"""

from __future__ import annotations

import signal
import time

import tomli_w
from support.procs import wait_for
from support.stores import race_loads

from scheduler.manifest import parse_manifest
from scheduler.states import JobState


def manifest_text(n: int, offset: int = 0) -> str:
    return tomli_w.dumps({"schema_version": 1, "jobs": [{"name": f"j{i}", "model": "m", "seed": i}
                                                         for i in range(offset, offset + n)]})


def consistent(store) -> tuple[int, int]:
    """(jobs listed by the manifest, jobs in total) after checking every index agrees."""
    r, k = store.redis, store.keys
    total = r.zcard(k.jobs)
    assert sum(r.zcard(k.state(s.value)) for s in JobState) == total
    listed = r.scard(k.in_manifest)
    pending_indexed = sum(r.zcard(key) for key in r.scan_iter(match=k.pending("*")))
    assert pending_indexed == listed  # nothing ran: every listed job is pending and indexed
    assert r.zcard(k.orphaned) == total - listed
    return listed, total


def ids_of(text: str) -> set[str]:
    return {j.job_id for j in parse_manifest(text, "m.toml").jobs}


def test_receiver_sigkilled_mid_reload_leaves_one_whole_load(procs, real_store, tmp_path, tally):
    path = tmp_path / "m.toml"
    current = manifest_text(2000)
    path.write_text(current)
    for round_no, delay in enumerate((0.0, 0.05, 0.2, 0.5)):
        receiver = procs.start("receiver", "--manifest", str(path))
        wait_for(lambda: "receiver ready" in procs.log_of(receiver), what="ready")
        listed = {m.decode() for m in real_store.redis.smembers(real_store.keys.in_manifest)}
        assert listed == ids_of(current)
        consistent(real_store)
        new = manifest_text(2000, offset=500 * (round_no + 1))
        path.write_text(new)
        receiver.send_signal(signal.SIGHUP)
        time.sleep(delay)
        receiver.kill()
        receiver.wait(10)
        time.sleep(0.3)  # a script already sent finishes on the server even though its client died
        consistent(real_store)
        listed = {m.decode() for m in real_store.redis.smembers(real_store.keys.in_manifest)}
        assert listed in (ids_of(current), ids_of(new)), "a reload must apply whole or not at all"
        current = new if listed == ids_of(new) else current
        path.write_text(current)
        tally.fault("SIGKILL of the receiver mid-reload")


def test_four_loaders_thirty_rounds_equal_one_load(real_store, real_redis, redis_server, tally):
    manifests = [parse_manifest(manifest_text(300), "a.toml"), parse_manifest(manifest_text(300, 150), "b.toml")]
    errors = race_loads(redis_server, [manifests[i % 2] for i in range(4)], rounds=30)
    assert errors == []
    listed, total = consistent(real_store)
    assert listed == 300 and total == 450
    last = set(m.decode() for m in real_redis.smembers(real_store.keys.in_manifest))
    assert last in ({j.job_id for j in manifests[0].jobs}, {j.job_id for j in manifests[1].jobs})
    tally.fault("four loaders racing for thirty rounds")
