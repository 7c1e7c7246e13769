"""A worker's disk fills up: outcomes stay true, the worker pauses instead of failing the queue.

The runs dir is a small tmpfs mounted for the test (root or a user namespace is
needed; the test skips, saying so, where mounting is not permitted). One job fills
the disk and fails; the worker must then claim nothing, say why in ``fleet status``
and ``fleet explain``, and resume by itself once space is freed. A second job fills
the disk and still exits 0: it must be recorded finished although not one byte of
``attempt.json`` fits beside its outputs. Nothing is lost: every job ends with one
attempt and the worker process lives through it all.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
import tomli_w
from support.procs import FleetProcs, wait_for, write_profile

from scheduler.states import JobState
from scheduler.store.workers import list_workers
from support.stores import make_store

FILLER = """
import errno, sys
path, mode = sys.argv[1], sys.argv[2]
try:
    with open(path, "wb") as fh:
        while True:
            fh.write(b"x" * 65536)
            fh.flush()
except OSError as err:
    if err.errno != errno.ENOSPC:
        raise
sys.exit(1 if mode == "fail" else 0)
"""


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}); run as root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _worker(store, name):
    return next((w for w in list_workers(store.redis, store.keys) if w.name == name), None)


def _free_fill_files(disk):
    for path in glob.glob(os.path.join(str(disk), "fill-*")):
        os.unlink(path)


def test_a_full_disk_pauses_the_worker_and_no_outcome_is_lost(tmp_path, small_disk, redis_server, real_redis, tally):
    procs = FleetProcs(redis_server.url, str(tmp_path))
    try:
        store = make_store(real_redis)
        filler = tmp_path / "filler.py"
        filler.write_text(FILLER)
        manifest = {"schema_version": 1,
                    "defaults": {"min_cores": 1, "max_attempts": 1,
                                 "command": [sys.executable, "-c", "print('small job')"]},
                    "jobs": [
                        {"name": "filler-fail", "model": "fill", "priority": 10,
                         "command": [sys.executable, str(filler), str(small_disk / "fill-a"), "fail"]},
                        {"name": "filler-ok", "model": "fill", "priority": 5, "seed": 1,
                         "command": [sys.executable, str(filler), str(small_disk / "fill-b"), "ok"]},
                        *({"name": f"small-{i}", "model": "small", "seed": i} for i in range(3))]}
        path = tmp_path / "m.toml"
        path.write_text(tomli_w.dumps(manifest))
        assert procs.run("load", str(path)).returncode == 0
        profile = write_profile(str(tmp_path / "h.toml"), "box", 1, 8)
        worker = procs.worker("--min-free-disk-mib", "1", profile=profile, name="w",
                              runs_dir=str(small_disk / "runs"))

        def state(name):
            return store.jobs.get(store.jobs.resolve(name)).state

        wait_for(lambda: state("filler-fail") is JobState.FAILED, what="the first filler to fail")
        paused = wait_for(lambda: (w := _worker(store, "w")) and w.state == "paused" and w, what="worker paused")
        assert "disk full" in paused.note and "free space" in paused.note
        status = procs.run("status")
        assert "w claims nothing: disk full" in status.stdout, status.stdout
        assert "w claims nothing: disk full" in procs.run("workers").stdout
        explain = procs.run("explain", "filler-ok")
        assert "paused: disk full" in explain.stdout, explain.stdout
        assert state("filler-ok") is JobState.PENDING  # held back, not claimed and burnt

        _free_fill_files(small_disk)
        wait_for(lambda: state("filler-ok") is JobState.FINISHED, what="the second filler, exit 0 on a full disk")
        record = store.jobs.get(store.jobs.resolve("filler-ok"))
        assert record.attempts == 1
        wait_for(lambda: _worker(store, "w").state == "paused", what="worker paused again")
        assert all(state(f"small-{i}") is JobState.PENDING for i in range(3))

        _free_fill_files(small_disk)
        wait_for(lambda: all(state(f"small-{i}") is JobState.FINISHED for i in range(3)), what="the small jobs")
        counts = store.jobs.counts()
        assert (counts["finished"], counts["failed"], counts["pending"], counts["running"]) == (4, 1, 0, 0)
        for name in ("filler-fail", "filler-ok", "small-0", "small-1", "small-2"):
            assert store.jobs.get(store.jobs.resolve(name)).attempts == 1, name
        assert worker.poll() is None, procs.log_of(worker)
        assert _worker(store, "w").note == ""
        tally.fault("the runs dir's disk filled by a job", 2)
        tally.ran(5, 5)
    finally:
        procs.stop_all()
