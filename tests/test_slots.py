"""`fleet worker --slots N`: one service running N attempts at once, on real processes and Redis.

What an operator relies on: the slots together never reserve more than the host has
(checked from the jobs' own records of when they ran); status shows one worker
``busy k/N``; rq sees one worker per slot; warm stop, drain and burst apply to the
whole worker; a slot that dies is restarted and its job comes back.
"""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest
from support.procs import sidefx_manifest, wait_for, write_profile
from test_worker_processes import ledger_runs

from scheduler.states import JobState
from scheduler.store.claims import Claims
from scheduler.resources import GpuInfo, HostResources
from worker.slots import auto_slots


def most_at_once(runs: list[dict]) -> int:
    """The most executions that overlapped in time, from their own start and end records."""
    edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def status_json(procs) -> dict:
    done = procs.run("status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def jobs(n: int, **extra) -> list[dict]:
    return [{"name": f"j{i}", "model": "m", "seed": i, **extra} for i in range(n)]


def test_one_worker_with_four_slots_fills_its_host_and_no_more(procs, real_store, tmp_path):
    path, ledger = sidefx_manifest(tmp_path, jobs(10), sleep_s=1.0, min_cores=1)
    procs.run("load", path)
    # 3 cores: the fourth slot must find nothing it may take while three jobs run.
    worker = procs.worker("--slots", "4", "--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 3, 8),
                          name="w", lease_s=5)
    # Idle: one slot is free. Waited for with the three busy ones, not read at the moment they are:
    # the fourth says idle once it has looked and found nothing it may take (CI once read it
    # before that, as busy).
    seen = wait_for(lambda: next((w for w in status_json(procs)["workers"]
                                  if w["busy_slots"] == 3 and w["state"] == "idle"), None),
                    what="three slots busy and the fourth idle")
    assert seen["name"] == "w" and seen["slots"] == 4 and len(seen["jobs"]) == 3
    assert len(status_json(procs)["workers"]) == 1, "one registration for the whole worker"
    table = procs.run("status").stdout
    assert "w " in table and " 3/4" in table, table
    # rq sees one worker per slot, named after the fleet worker.
    rq_workers = real_store.redis.smembers(f"{real_store.keys.rq_prefix}:workers")
    assert {key.decode().split(":worker:", 1)[1] for key in rq_workers} == {"w:0", "w:1", "w:2", "w:3"}, rq_workers
    assert worker.wait(60) == 0, procs.log_of(worker)[-3000:]
    runs = ledger_runs(ledger)
    assert len(runs) == 10 and len({r["job_id"] for r in runs}) == 10
    assert most_at_once(runs) == 3, "three cores: three at once, never four"
    assert real_store.jobs.counts()["finished"] == 10
    worker_doc = status_json(procs)["workers"][0]
    assert worker_doc["state"] == "stopped" and worker_doc["busy_slots"] == 0


def test_burst_waits_for_a_sibling_whose_job_releases_dependants(procs, real_store, tmp_path):
    """The second slot finds nothing claimable while `first` runs (its dependants are blocked);
    leaving then would run the two dependants one after the other on the last slot."""
    path, ledger = sidefx_manifest(tmp_path, [{"name": "first", "model": "m"},
                                              {"name": "left", "model": "m", "seed": 1, "after": ["first"]},
                                              {"name": "right", "model": "m", "seed": 2, "after": ["first"]}],
                                   sleep_s=1.0, min_cores=1)
    procs.run("load", path)
    worker = procs.worker("--slots", "2", "--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8),
                          name="w")
    assert worker.wait(60) == 0, procs.log_of(worker)[-3000:]
    runs = {real_store.jobs.get(r["job_id"]).name: r for r in ledger_runs(ledger)}
    assert set(runs) == {"first", "left", "right"}
    assert runs["left"]["start"] < runs["right"]["end"] and runs["right"]["start"] < runs["left"]["end"], \
        "both slots should have run the dependants side by side"


def test_warm_stop_and_drain_apply_to_every_slot(procs, real_store, tmp_path):
    path, _ = sidefx_manifest(tmp_path, jobs(6), sleep_s=2.0, min_cores=1)
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    worker = procs.worker("--slots", "2", profile=profile, name="w")
    wait_for(lambda: real_store.jobs.counts()["running"] == 2, what="both slots running a job")
    assert procs.run("drain", "w").returncode == 0
    wait_for(lambda: real_store.jobs.counts()["finished"] == 2, timeout_s=20, what="the two jobs finishing")
    time.sleep(1.0)
    counts = real_store.jobs.counts()
    assert counts["running"] == 0 and counts["pending"] == 4, ("drained: no slot claims more", counts)
    assert status_json(procs)["workers"][0]["state"] == "draining"
    assert procs.run("drain", "w", "--undo").returncode == 0
    wait_for(lambda: real_store.jobs.counts()["running"] == 2, what="both slots claiming again")
    procs.kill(worker, signal.SIGTERM)  # the supervisor only, as systemd's KillMode=mixed does
    assert worker.wait(20) == 0, procs.log_of(worker)[-3000:]
    counts = real_store.jobs.counts()
    assert counts["finished"] == 2 and counts["running"] == 0 and counts["pending"] == 4, \
        ("a warm stop stops what every slot runs (SIGTERM and its grace) and claims no more", counts)
    assert status_json(procs)["workers"][0]["state"] == "stopped"
    claims = Claims(real_store.redis, real_store.keys)

    def interrupted() -> int:
        return len([r for r in real_store.jobs.many(real_store.jobs.list_ids(JobState.PENDING))
                    if [a["outcome"] for a in claims.attempts(r.job_id)][-1:] == ["interrupted"]])

    assert interrupted() == 2  # each slot's job, uncounted: its next attempt resumes it
    # (A second SIGTERM's cold stop is test_worker_processes.py's, with a job that ignores the
    # first: these jobs end on the first at once, so a second one 0.3 s later met a finished
    # supervisor.)


def test_a_killed_slot_is_restarted_and_its_job_comes_back(procs, real_store, tmp_path):
    path, ledger = sidefx_manifest(tmp_path, jobs(2), sleep_s=1.5, min_cores=1)
    procs.run("load", path)
    worker = procs.worker("--slots", "2", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w",
                          lease_s=2)
    wait_for(lambda: real_store.jobs.counts()["running"] == 2, what="both slots running a job")
    # Both jobs' processes started (each writes its ledger file first): a kill between a claim
    # and its job's start leaves no execution to count, and CI once saw 2 runs, not 3, so.
    wait_for(lambda: len(os.listdir(ledger)) == 2, what="both jobs' processes started")
    slots = psutil.Process(worker.pid).children()
    assert len(slots) == 2
    os.kill(slots[0].pid, signal.SIGKILL)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 2, timeout_s=30, what="both jobs finished")
    assert worker.poll() is None, "the worker lives on"
    wait_for(lambda: len(psutil.Process(worker.pid).children()) == 2, what="the slot restarted")
    runs = ledger_runs(ledger)
    for job_id in {r["job_id"] for r in runs}:
        mine = sorted((r for r in runs if r["job_id"] == job_id), key=lambda r: r["start"])
        assert all(a["end"] <= b["start"] for a, b in zip(mine, mine[1:])), ("ran twice at once", mine)
    assert len(runs) == 3, "the killed slot's job ran again, once"
    assert status_json(procs)["workers"][0]["state"] in ("idle", "busy")


def test_slots_auto_is_one_per_gpu_or_one_per_core():
    def host(cores: int, gpus: int) -> HostResources:
        return HostResources("h", cores, 64.0, 64.0, tuple(GpuInfo(i, "H100", 80.0, 80.0) for i in range(gpus)))
    assert auto_slots(host(64, 8)) == 8
    assert auto_slots(host(16, 0)) == 16
    assert auto_slots(host(256, 0)) == 64


def test_bad_slots_values_are_one_line_errors(procs, tmp_path):
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    for value, words in (("0", "1 or more"), ("four", "or auto"), ("300", "at most 256")):
        done = procs.run("worker", "--host-profile", profile, "--slots", value)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2 and last.startswith("fleet worker: error:") and words in last, (value, done.stderr)


def test_a_slotted_record_sums_up_its_live_slots_and_a_damaged_one_is_named(store):
    """What `fleet status` reads: a slot silent past the lease (killed, restarting) counts as
    neither busy nor idle; a slot entry fleet did not write is one error naming the key."""
    import time as clock

    from scheduler.errors import StoreError
    from scheduler.store.workers import SLOT_FIELD, slot_entry

    now = clock.time()
    host = HostResources("box", 8, 16.0, 16.0)
    key = store.keys.worker("w")
    store.redis.hset(key, mapping={"name": "w", "host": "box", "resources": host.to_json(), "lease_s": 30,
                                   "heartbeat": repr(now), "slots": 3,
                                   f"{SLOT_FIELD}0": slot_entry("busy", "job-a", "", now),
                                   f"{SLOT_FIELD}1": slot_entry("idle", "", "", now),
                                   f"{SLOT_FIELD}2": slot_entry("busy", "job-c", "", now - 60)})
    store.redis.zadd(store.keys.workers, {"w": now})
    (w,) = store.workers(now)
    assert (w.state, w.slots, w.busy_slots, w.jobs, w.job_id) == ("idle", 3, 1, ("job-a",), "job-a")
    store.redis.hset(key, f"{SLOT_FIELD}1", slot_entry("busy", "job-b", "", now))
    assert store.workers(now)[0].state == "busy"
    store.redis.hset(key, f"{SLOT_FIELD}1", "not json")
    with pytest.raises(StoreError, match=f"{key} field {SLOT_FIELD}1 is corrupt"):
        store.workers(now)
