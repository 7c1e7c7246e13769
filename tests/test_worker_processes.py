"""Real `fleet worker` processes on a real redis-server: placement, ledger, reload, shutdown, timeouts."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import tomli_w
from support.procs import SIDEFX, wait_for, write_profile

from scheduler.manifest import load_manifest
from scheduler.matching import ConstraintClass, free_of, gpu_count, job_reason
from scheduler.states import JobState
from scheduler.store.claims import Claims
from worker.host_profile import load_host_profile


def sidefx_defaults(ledger, sleep: float = 0.0) -> dict:
    return {"command": [sys.executable, SIDEFX, str(ledger), "{job_id}", "{attempt}", "{sleep}"], "sleep": sleep}


def write_manifest(path, manifest: dict) -> str:
    path.write_text(tomli_w.dumps(manifest))
    return str(path)


def ledger_runs(ledger) -> list[dict]:
    runs = []
    for path in glob.glob(os.path.join(str(ledger), "*")):
        job_id, attempt, _ = os.path.basename(path).split(".")
        lines = open(path).read().splitlines()
        first = lines[0].split()
        runs.append({"job_id": job_id, "attempt": int(attempt), "start": float(first[1]),
                     "host": first[2] if len(first) > 2 else "", "end": float(lines[-1].split()[1])})
    return runs


def test_placement_respects_every_constraint(procs, real_store, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    profiles = {
        "gpu-a100": write_profile(str(tmp_path / "a100.toml"), "gpu-a100", 32, 256, [80, 80]),
        "gpu-4090": write_profile(str(tmp_path / "4090.toml"), "gpu-4090", 16, 64, [24]),
        "cpu-1": write_profile(str(tmp_path / "cpu.toml"), "cpu-1", 32, 128),
        "thinkpad": write_profile(str(tmp_path / "tp.toml"), "thinkpad", 4, 16),
    }
    jobs = [
        {"name": "transformer-big", "model": "transformer", "require_cuda": True, "min_vram_gib": 70},
        {"name": "cnn-mid", "model": "cnn", "require_cuda": True, "min_vram_gib": 20},
        {"name": "cnn-small", "model": "cnn", "require_cuda": True, "min_vram_gib": 8, "seed": 1},
        {"name": "gbt-ram", "model": "gbt", "min_ram_gib": 100},
        {"name": "knn-any", "model": "knn"},
        {"name": "knn-laptop", "model": "knn", "seed": 1, "allowed_hosts": ["thinkpad"]},
        {"name": "mlp-no-laptop", "model": "mlp", "denied_hosts": ["thinkpad", "cpu-*"]},
        {"name": "lstm-cores", "model": "lstm", "min_cores": 20},
        {"name": "impossible", "model": "transformer", "seed": 9, "require_cuda": True, "min_vram_gib": 200},
    ]
    manifest = {
        "schema_version": 1,
        "defaults": {**sidefx_defaults(ledger), "min_cores": 1},
        "hosts": {
            "gpu-a100": {"priority": 10, "allow_jobs": ["transformer*", "cnn", "lstm", "mlp"]},
            "gpu-4090": {"priority": 5},
            "cpu-1": {"deny_jobs": ["cnn", "transformer"]},
            "thinkpad": {"deny_jobs": ["transformer", "cnn", "lstm", "gbt"]},
        },
        "jobs": jobs,
    }
    path = write_manifest(tmp_path / "m.toml", manifest)
    assert procs.run("load", path).returncode == 0
    workers = [procs.worker("--burst", profile=p, name=h) for h, p in profiles.items()]
    for w in workers:
        assert w.wait(60) == 0, procs.log_of(w)

    spec = load_manifest(path)
    placed = {run["job_id"]: run["host"] for run in ledger_runs(ledger)}
    for job in spec.jobs:
        record = real_store.jobs.get(job.job_id)
        if job.name == "impossible":
            assert record.state is JobState.PENDING and job.job_id not in placed
            continue
        assert record.state is JobState.FINISHED, (job.name, record)
        host = placed[job.job_id]
        assert record.host == host
        resources = load_host_profile(profiles[host])
        assert job_reason(job, spec.hosts.get(host), resources, free_of(resources)) is None, (job.name, host)
    assert placed[spec.job_named("knn-laptop").job_id] == "thinkpad"
    assert placed[spec.job_named("transformer-big").job_id] == "gpu-a100"


def test_four_workers_on_one_host_never_oversubscribe_ram(procs, real_store, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    rams = [20, 30, 40, 20, 30, 40, 20, 30, 40, 24, 24, 16]
    manifest = {"schema_version": 1, "defaults": {**sidefx_defaults(ledger, 0.4), "min_cores": 0},
                "jobs": [{"name": f"r{i}", "model": "m", "seed": i, "min_ram_gib": ram} for i, ram in enumerate(rams)]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    assert procs.run("load", path).returncode == 0
    profile = write_profile(str(tmp_path / "h.toml"), "shared", 64, 64)
    workers = [procs.worker(profile=profile, name=f"w{i}") for i in range(4)]
    wait_for(lambda: real_store.jobs.counts()["finished"] == len(rams), timeout_s=60, what="all jobs finished")
    ram_of = {j.job_id: j.scheduling["min_ram_gib"] for j in load_manifest(path).jobs}
    events = []
    for run in ledger_runs(ledger):
        events += [(run["start"], ram_of[run["job_id"]]), (run["end"], -ram_of[run["job_id"]])]
    held = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        held += delta
        peak = max(peak, held)
    assert peak <= 64, f"held {peak} GiB of min_ram_gib at once on a 64 GiB host"
    assert peak > 40, "the test should actually run jobs concurrently"
    for w in workers:
        procs.kill(w, signal.SIGTERM)


def test_idle_worker_wakes_on_new_work_and_reload_never_reruns_finished(procs, real_store, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    base = {"schema_version": 1, "defaults": sidefx_defaults(ledger, 0.0),
            "jobs": [{"name": "first", "model": "m"}]}
    path = tmp_path / "m.toml"
    write_manifest(path, base)
    procs.start("receiver", "--manifest", str(path))
    profile = write_profile(str(tmp_path / "h.toml"), "box", 8, 32)
    # A 30 s lease means a 10 s heartbeat: only the events stream can wake it sooner.
    procs.worker(profile=profile, name="idle", lease_s=30)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 1, timeout_s=30, what="first job")
    time.sleep(0.5)  # the worker is now blocked waiting for events
    base["jobs"] += [{"name": "second", "model": "m", "seed": 2}]
    write_manifest(path, base)
    t0 = time.time()
    procs.run("load", str(path))
    wait_for(lambda: real_store.jobs.counts()["finished"] == 2, timeout_s=8, what="second job, woken by the load")
    assert time.time() - t0 < 8
    base["jobs"][0]["priority"] = 7
    write_manifest(path, base)
    procs.run("load", str(path))
    time.sleep(0.5)
    assert len(ledger_runs(ledger)) == 2, "a reload must never rerun a finished job"


def test_a_worker_shows_idle_as_soon_as_its_job_ends_even_while_rq_is_suspended(procs, real_store, tmp_path):
    """`fleet status` must not show a finished job as the worker's current one: rq's suspension
    (`rq suspend`) holds the worker between jobs, before it waits for the next claim."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "defaults": sidefx_defaults(ledger, 1.0),
                                                "jobs": [{"name": "a", "model": "m"}]})
    procs.run("load", path)
    procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 1, 32), name="w")
    entry = real_store.keys.worker("w")
    wait_for(lambda: real_store.redis.hget(entry, "state") == b"busy", what="the worker busy with the job")
    real_store.redis.set(f"{real_store.keys.rq_prefix}:suspended", 1)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 1, timeout_s=15, what="the job to finish")
    wait_for(lambda: real_store.redis.hmget(entry, "state", "job_id") == [b"idle", b""], timeout_s=3,
             what="the worker's entry to say idle")


def test_rq_suspend_holds_the_worker_between_jobs_until_rq_resume(procs, real_store, tmp_path):
    """`rq suspend` keeps working on fleet workers: set while a job runs, the worker finishes
    it and claims nothing more until `rq resume`, though fleet's claim replaces rq's dequeue."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "defaults": sidefx_defaults(ledger, 1.0),
                                                "jobs": [{"name": "a", "model": "m", "priority": 9},
                                                         {"name": "b", "model": "m", "seed": 1}]})
    procs.run("load", path)
    procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 1, 32), name="w")
    wait_for(lambda: real_store.jobs.counts()["running"] == 1, what="job a running")
    suspended = f"{real_store.keys.rq_prefix}:suspended"
    real_store.redis.set(suspended, 1)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 1, timeout_s=15, what="job a to finish")
    deadline = time.monotonic() + 2.5  # rq's suspended worker looks again every second
    while time.monotonic() < deadline:
        counts = real_store.jobs.counts()
        assert counts["pending"] == 1 and counts["running"] == 0, f"a suspended worker claimed b: {counts}"
        time.sleep(0.1)
    real_store.redis.delete(suspended)
    wait_for(lambda: real_store.jobs.counts()["finished"] == 2, timeout_s=15, what="job b to run after resume")


CHECKPOINTS_ON_SIGTERM = """import os, signal, sys, time
resume = os.environ["FLEET_RESUME_DIR"]
print("resumed from", open(os.path.join(resume, "ckpt")).read() if resume else "nothing", flush=True)
def save(*_):
    time.sleep(0.3)  # a checkpoint takes a moment; the grace allows it
    with open(os.path.join(os.environ["FLEET_OUTPUT_DIR"], "ckpt"), "w") as fh:
        fh.write("epoch 7")
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
time.sleep(0.2 if resume else 60)
"""


def test_warm_stop_gives_the_job_sigterm_and_its_grace_and_the_next_attempt_resumes(procs, real_store, tmp_path):
    """`systemctl stop` (SIGTERM to the worker): the running job gets SIGTERM and its
    stop_grace_s to save a checkpoint; the attempt is interrupted (uncounted), the job pending,
    and its next attempt resumes from that checkpoint. A second SIGTERM kills at once."""
    script = tmp_path / "train.py"
    script.write_text(CHECKPOINTS_ON_SIGTERM)
    manifest = {"schema_version": 1, "jobs": [
        {"name": "a", "model": "m", "stop_grace_s": 10, "command": [sys.executable, str(script)]}]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 1, 32)
    worker = procs.worker(profile=profile, name="w")
    wait_for(lambda: real_store.jobs.counts()["running"] == 1, what="a running job")
    time.sleep(0.5)  # its SIGTERM handler is installed
    procs.kill(worker, signal.SIGTERM)
    assert worker.wait(20) == 0
    job_id = real_store.jobs.resolve("a")
    assert real_store.jobs.get(job_id).state is JobState.PENDING
    (first,) = real_store.jobs.attempts(job_id)
    assert first["outcome"] == "interrupted" and real_store.jobs.get(job_id).max_attempts == 3
    assert procs.worker("--burst", profile=profile, name="w").wait(30) == 0
    assert "resumed from epoch 7" in procs.run("logs", "a", "--attempt", "2").stdout
    assert [a["outcome"] for a in real_store.jobs.attempts(job_id)] == ["interrupted", "finished"]


def test_a_second_sigterm_interrupts_the_job_at_once(procs, real_store, tmp_path):
    """A job that ignores SIGTERM would have its whole stop_grace_s (30 s here): the second
    SIGTERM (systemd's, or an impatient operator's) kills it now, and it goes back to pending."""
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": [
        {"name": "deaf", "model": "m", "stop_grace_s": 30, "command": [sys.executable, "-c", deaf]}]})
    procs.run("load", path)
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 1, 32), name="w2")
    wait_for(lambda: "up" in procs.run("logs", "deaf").stdout, what="the job running")
    procs.kill(worker, signal.SIGTERM)
    time.sleep(0.3)
    procs.kill(worker, signal.SIGTERM)
    try:  # well inside the 30 s grace (5 s here once timed out on a loaded CI machine)
        assert worker.wait(15) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("the second SIGTERM did not stop the worker: " + procs.log_of(worker)[-3000:])
    job_id = real_store.jobs.resolve("deaf")
    assert real_store.jobs.get(job_id).state is JobState.PENDING
    outcomes = [a["outcome"] for a in Claims(real_store.redis, real_store.keys).attempts(job_id)]
    assert outcomes == ["interrupted"]

def test_timeout_kills_the_whole_tree(procs, real_store, tmp_path):
    marker = f"fleet-grandchild-{os.getpid()}-{time.time_ns()}"
    script = ("import subprocess, sys, time\n"
              f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'])\n"
              "time.sleep(300)\n")
    manifest = {"schema_version": 1, "jobs": [{"name": "hang", "model": "m", "timeout_s": 1, "max_attempts": 1,
                                                "command": [sys.executable, "-c", script]}]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    worker = procs.worker("--burst", profile=profile, name="w")
    assert worker.wait(60) == 0
    record = real_store.jobs.get(real_store.jobs.resolve("hang"))
    assert record.state is JobState.FAILED
    attempts = Claims(real_store.redis, real_store.keys).attempts(record.job_id)
    assert attempts[0]["outcome"] == "timeout"
    assert _processes_marked(marker) == []


def _processes_marked(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline", "status"])
            if marker in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]


def test_a_daemon_the_job_left_behind_ends_with_it(procs, real_store, tmp_path):
    """A helper that double-forks out of the job's session (as daemons do) outlived every
    clean exit before; on a GPU box it would keep memory the ledger had already freed."""
    marker = f"fleet-daemon-{os.getpid()}-{time.time_ns()}"
    script = ("import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    if os.fork() == 0:\n"
              f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'])\n"
              "    os._exit(0)\n"
              "time.sleep(0.5)\n")
    manifest = {"schema_version": 1, "jobs": [{"name": "spawns", "model": "m", "max_attempts": 1,
                                                "command": [sys.executable, "-c", script]}]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    try:
        assert procs.worker("--burst", profile=profile, name="w").wait(60) == 0
        assert real_store.jobs.get(real_store.jobs.resolve("spawns")).state is JobState.FINISHED
        assert _processes_marked(marker) == []
    finally:
        for survivor in _processes_marked(marker):
            survivor.kill()


def test_idle_high_priority_host_and_smallest_gpu_get_first_pick(procs, real_store, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    manifest = {"schema_version": 1, "defaults": sidefx_defaults(ledger, 0.0),
                "hosts": {"fast": {"priority": 10}, "slow": {"priority": 0}, "a100": {}, "rtx": {}},
                "jobs": [{"name": "warmup", "model": "m", "allowed_hosts": ["nowhere"]}]}
    path = tmp_path / "m.toml"
    write_manifest(path, manifest)
    procs.run("load", str(path))
    for name, gpus in (("fast", []), ("slow", []), ("a100", [80]), ("rtx", [24])):
        procs.worker(profile=write_profile(str(tmp_path / f"{name}.toml"), name, 8, 32, gpus), name=name, lease_s=30)
    wait_for(lambda: len([w for w in real_store.redis.zrange(real_store.keys.workers, 0, -1)]) == 4,
             what="four registered workers")
    time.sleep(0.5)  # all idle, blocked on events
    manifest["jobs"] += [{"name": "cpu-job", "model": "m", "seed": 1, "allowed_hosts": ["fast", "slow"]},
                         {"name": "gpu-job", "model": "m", "seed": 2, "require_cuda": True, "min_vram_gib": 10}]
    write_manifest(path, manifest)  # warmup stays listed: a load orphaning every job is refused
    assert procs.run("load", str(path)).returncode == 0
    wait_for(lambda: real_store.jobs.counts()["finished"] == 2, timeout_s=20, what="both jobs")
    hosts = {real_store.jobs.get(real_store.jobs.resolve(n)).host for n in ("cpu-job", "gpu-job")}
    assert hosts == {"fast", "rtx"}


def test_cancel_stops_a_running_job_and_drain_stops_claiming(procs, real_store, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    manifest = {"schema_version": 1, "defaults": sidefx_defaults(ledger, 60.0),
                "jobs": [{"name": "long", "model": "m"}, {"name": "next", "model": "m", "seed": 1, "sleep": 0.0}]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 1, 8)
    worker = procs.worker(profile=profile, name="w", lease_s=3)
    wait_for(lambda: real_store.jobs.counts()["running"] == 1, what="the long job running")
    assert procs.run("drain", "w", "--reason", "swap a disk").returncode == 0
    (w,) = json.loads(procs.run("workers", "--json").stdout)  # draining while its job still runs, not busy
    assert (w["state"], w["drain_reason"], w["busy_slots"]) == ("draining", "swap a disk", 1)
    (row,) = [line for line in procs.run("workers").stdout.splitlines() if line.startswith("w ")]
    assert "draining (swap a disk)" in row and " long " in f"{row} "  # the JOB column names the job
    assert procs.run("cancel", "long").returncode == 0
    wait_for(lambda: real_store.jobs.get(real_store.jobs.resolve("long")).state is JobState.CANCELED,
             timeout_s=15, what="the cancel to reach the worker")
    # rq agrees: canceled, not failed (rq info and rq-dashboard counted fleet's cancels as failures)
    keys, long_id = real_store.keys, real_store.jobs.resolve("long")
    wait_for(lambda: real_store.redis.zscore(keys.rq_canceled, long_id) is not None, what="rq's canceled registry")
    assert real_store.redis.zscore(f"{keys.rq_prefix}:failed:{keys.queue_name}", long_id) is None
    assert real_store.redis.hget(keys.rq_job(long_id), "status") == b"canceled"
    # its log names the job and says where each attempt went and how it ended
    wait_for(lambda: f"long ({long_id[:8]}) attempt 1: canceled -> canceled" in procs.log_of(worker),
             what="the worker's log of the attempt's end")
    assert f"claimed long ({long_id[:8]}) attempt 1 on box" in procs.log_of(worker)
    # Its process is gone: the ledger file stops growing.
    size = os.path.getsize(next(iter(glob.glob(str(ledger / "*")))))
    time.sleep(0.3)
    assert os.path.getsize(next(iter(glob.glob(str(ledger / "*"))))) == size
    # Drained: "next" stays pending while the worker is up.
    time.sleep(1.5)
    assert real_store.jobs.get(real_store.jobs.resolve("next")).state is JobState.PENDING
    assert procs.run("drain", "w", "--undo").returncode == 0
    wait_for(lambda: real_store.jobs.get(real_store.jobs.resolve("next")).state is JobState.FINISHED,
             timeout_s=15, what="the undrained worker to take the next job")


def test_cancel_gives_a_running_job_sigterm_and_its_grace_promptly(procs, real_store, tmp_path):
    """As `scancel`: the job gets SIGTERM first and may save a checkpoint; and the cancel lands
    within seconds, not at the worker's next lease renewal (10 s with a 30 s lease)."""
    saved = tmp_path / "checkpoint"
    script = ("import signal, sys, time\n"
              "def save(*_):\n"
              f"    time.sleep(0.5); open({str(saved)!r}, 'w').write('saved'); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, save)\n"
              "print('started', flush=True)\n"
              "time.sleep(120)\n")
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": [
        {"name": "trap", "model": "m", "command": [sys.executable, "-c", script]}]})
    procs.run("load", path)
    procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 1, 8), name="w", lease_s=30)
    job_id = real_store.jobs.resolve("trap")
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.RUNNING, what="the job running")
    time.sleep(0.5)  # its SIGTERM handler is installed
    t0 = time.monotonic()
    assert procs.run("cancel", "trap").returncode == 0
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.CANCELED, timeout_s=8,
             what="the cancel to end the job")
    assert time.monotonic() - t0 < 5, "the cancel waited for the worker's lease renewal"
    assert saved.read_text() == "saved", "the job was killed without SIGTERM and its grace"


@pytest.mark.parametrize("slots", ["1", "2"])
def test_a_sigkilled_worker_restarts_at_once_under_the_same_name(procs, real_store, tmp_path, slots):
    """systemd's Restart=always with --name %H: the crashed worker's lease (30 s here) has not run
    out, but its processes are gone from this machine, so the name is taken back at once."""
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    first = procs.worker("--slots", slots, profile=profile, name="fixed", lease_s=30)
    wait_for(lambda: real_store.worker("fixed") is not None and real_store.worker("fixed").state == "idle",
             what="registered")
    if slots == "1":
        procs.kill(first)
    else:  # the supervisor and its slots at once, as systemd kills what is left of a crashed unit
        os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    second = procs.worker("--slots", slots, profile=profile, name="fixed", lease_s=30)
    wait_for(lambda: real_store.redis.hget(real_store.keys.worker("fixed"), "pid") == str(second.pid).encode(),
             what="the restarted worker to register")
    assert second.poll() is None
    third = procs.worker("--burst", profile=profile, name="fixed", lease_s=30)
    assert third.wait(20) != 0 and "live worker named 'fixed'" in procs.log_of(third)


def test_workers_forget_removes_a_stopped_record_and_refuses_a_live_one(procs, real_store, tmp_path):
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    gone = procs.worker("--burst", profile=profile, name="gone")
    assert gone.wait(20) == 0
    live = procs.worker(profile=profile, name="live")
    wait_for(lambda: real_store.worker("live") is not None, what="registered")
    refused = procs.run("workers", "--forget", "gone", "--forget", "live")
    assert refused.returncode != 0 and "worker 'live' is idle" in refused.stderr
    assert real_store.worker("gone").state == "stopped"  # all or nothing
    assert procs.run("workers", "--forget", "nobody").returncode != 0
    done = procs.run("workers", "--forget", "gone")
    assert done.returncode == 0 and "forgot worker gone" in done.stdout
    assert real_store.worker("gone") is None and "gone" not in procs.run("workers").stdout
    live.terminate()
    live.wait(20)


def test_rq_requeue_of_a_failed_job_comes_back_to_fleet(procs, real_store, tmp_path):
    """`rq requeue` (plain rq, not fleet) pushes onto rq's list; the receiver (or any idle fleet
    worker) brings it back."""
    import subprocess as sp

    flag = tmp_path / "fixed"
    script = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 3)"
    manifest = {"schema_version": 1,
                "jobs": [{"name": "flaky", "model": "m", "max_attempts": 1, "command": [sys.executable, "-c", script]}]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    assert procs.worker("--burst", profile=profile, name="w1").wait(30) == 0
    job_id = real_store.jobs.resolve("flaky")
    assert real_store.jobs.get(job_id).state is JobState.FAILED
    flag.write_text("now it works")
    env = dict(procs.env, RQ_KEY_PREFIX="{fleet}:rq")
    done = sp.run([os.path.join(os.path.dirname(sys.executable), "rq"), "requeue", "--queue", "fleet", "--all",
                   "--url", procs.redis_url], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Requeueing 1 jobs" in done.stdout or "1 job" in done.stdout, done.stdout
    # No worker runs now (as if all were busy): the receiver's tick brings it back at once.
    procs.start("receiver", "--manifest", path)
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.PENDING, timeout_s=5,
             what="the requeue to reach fleet through the receiver")
    assert procs.worker("--burst", profile=profile, name="w2").wait(30) == 0
    assert real_store.jobs.get(job_id).state is JobState.FINISHED


def test_logs_stream_to_redis_and_follow_ends_with_the_attempt(procs, real_store, tmp_path):
    script = "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.3)\n"
    manifest = {"schema_version": 1, "jobs": [{"name": "talky", "model": "m", "command": [sys.executable, "-c", script]}]}
    path = write_manifest(tmp_path / "m.toml", manifest)
    procs.run("load", path)
    procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w")
    wait_for(lambda: real_store.jobs.counts()["running"] == 1, what="the job running")
    follow = procs.run("logs", "talky", "-f", timeout_s=30)
    assert follow.returncode == 0
    assert [l for l in follow.stdout.splitlines() if l.startswith("line")] == [f"line {i}" for i in range(5)]
    again = procs.run("logs", "talky", "--attempt", "1")
    assert again.stdout == follow.stdout
    assert procs.run("logs", "talky", "--attempt", "2").returncode == 3


def test_rq_info_sees_fleet_workers_and_jobs(procs, real_store, tmp_path):
    import subprocess as sp

    manifest = {"schema_version": 1, "jobs": [{"name": "x", "model": "m", "command": ["true"]}]}
    procs.run("load", write_manifest(tmp_path / "m.toml", manifest))
    procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="visible")
    wait_for(lambda: real_store.jobs.counts()["finished"] == 1, what="the job")
    env = dict(procs.env, RQ_KEY_PREFIX="{fleet}:rq")
    info = sp.run([os.path.join(os.path.dirname(sys.executable), "rq"), "info", "--url", procs.redis_url, "--raw"],
                  env=env, capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "queue fleet" in info.stdout and "worker visible" in info.stdout, info.stdout
    rq_job = real_store.redis.hgetall(real_store.keys.rq_job(real_store.jobs.resolve("x")))
    assert rq_job[b"status"] == b"finished" and rq_job[b"origin"] == b"fleet"


def test_pipeline_train_then_eval_with_a_failing_branch_resumed_by_retry(procs, real_store, tmp_path):
    flag = tmp_path / "fixed"
    train = [sys.executable, "-c", f"import os, sys; sys.exit(0 if '{{model}}' != 'knn' or os.path.exists({str(flag)!r}) else 5)"]
    jobs = []
    for model in ("cnn", "gbt", "knn"):
        jobs.append({"name": f"train-{model}", "model": model, "max_attempts": 1, "command": train})
        jobs.append({"name": f"eval-{model}", "model": model, "mode": "eval", "after": [f"train-{model}"],
                     "command": ["true"]})
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs})
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 4, 16)
    assert procs.worker("--burst", profile=profile, name="w1").wait(60) == 0
    states = {n: real_store.jobs.get(real_store.jobs.resolve(n)).state.value
              for n in ("train-cnn", "eval-cnn", "train-gbt", "eval-gbt", "train-knn", "eval-knn")}
    assert states == {"train-cnn": "finished", "eval-cnn": "finished", "train-gbt": "finished",
                      "eval-gbt": "finished", "train-knn": "failed", "eval-knn": "blocked"}
    assert "train-knn did not finish" in procs.run("explain", "eval-knn").stdout
    flag.write_text("fixed")
    assert procs.run("retry", "train-knn", "--reset").returncode == 0
    assert procs.worker("--burst", profile=profile, name="w2").wait(60) == 0
    assert real_store.jobs.get(real_store.jobs.resolve("eval-knn")).state is JobState.FINISHED


def test_a_dependent_finds_its_parents_output_dir(procs, real_store, tmp_path):
    write = "import os; open(os.path.join(os.environ['FLEET_OUTPUT_DIR'], 'model.txt'), 'w').write('weights')"
    read = "import sys; print(open(sys.argv[1] + '/model.txt').read())"
    jobs = [{"name": "train", "model": "m", "command": [sys.executable, "-c", write]},
            {"name": "eval", "model": "m", "mode": "eval", "after": ["train"],
             "command": [sys.executable, "-c", read, "{after.train.output_dir}"]}]
    procs.run("load", write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs}))
    assert procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w").wait(60) == 0
    assert real_store.jobs.get(real_store.jobs.resolve("eval")).state is JobState.FINISHED
    assert procs.run("logs", "eval").stdout.strip() == "weights"


def test_a_failed_parent_runs_its_alert_and_clean_up_and_blocks_its_evaluation(procs, real_store, tmp_path):
    """after_failed and after_any children run when their parent fails for good, and find what
    that failed attempt left ({after.<job>.output_dir}: its latest attempt's, not a finished one)."""
    die = ("import os, sys; open(os.path.join(os.environ['FLEET_OUTPUT_DIR'], 'model.txt'), 'w').write('half'); "
           "sys.exit(3)")
    read = "import sys; print(open(sys.argv[1] + '/model.txt').read())"
    jobs = [{"name": "train", "model": "m", "max_attempts": 1, "command": [sys.executable, "-c", die]},
            {"name": "eval", "model": "m", "mode": "eval", "after": ["train"], "command": ["true"]},
            {"name": "alert", "model": "m", "mode": "alert", "after_failed": ["train"],
             "command": [sys.executable, "-c", read, "{after.train.output_dir}"]},
            {"name": "cleanup", "model": "m", "mode": "cleanup", "after_any": ["train"], "command": ["true"]}]
    procs.run("load", write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs}))
    assert procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w").wait(60) == 0
    states = {n: real_store.jobs.get(real_store.jobs.resolve(n)).state.value for n in ("train", "eval", "alert",
                                                                                       "cleanup")}
    assert states == {"train": "failed", "eval": "blocked", "alert": "finished", "cleanup": "finished"}
    assert procs.run("logs", "alert").stdout.strip() == "half"


def test_a_busy_worker_with_no_receiver_sees_no_outage(procs, real_store, tmp_path):
    """With no receiver, a worker busy for longer than two reaper ticks used to log 'no reaper
    reached Redis for 3.1s (an outage?)' on its next claim while Redis was fine: busy workers
    now reap too, once a lease renewal."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1,
                                                "defaults": {**sidefx_defaults(ledger, 3.5), "min_cores": 0},
                                                "jobs": [{"name": "long", "model": "m"}, {"name": "next", "model": "m",
                                                                                         "seed": 1}]})
    assert procs.run("load", path).returncode == 0
    worker = procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 1, 8), name="w",
                          lease_s=3)
    assert worker.wait(60) == 0, procs.log_of(worker)
    assert real_store.jobs.counts()["finished"] == 2
    assert "no reaper" not in procs.log_of(worker), procs.log_of(worker)


def test_a_job_sees_exactly_the_gpus_it_reserved(procs, real_store, tmp_path):
    """CUDA_VISIBLE_DEVICES as the job's own process sees it: a 2-GPU job two distinct GPUs of the
    four, a whole-GPU job one, a job that asks for none, none; a 3-GPU job on a 2-GPU host never starts."""
    seen = tmp_path / "seen"
    seen.mkdir()
    script = "import os, sys; open(sys.argv[1], 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))"
    command = [sys.executable, "-c", script, str(seen / "{name}")]
    jobs = [{"name": "ddp-2", "model": "m", "gpus": 2, "command": command},
            {"name": "whole-1", "model": "m", "seed": 1, "require_cuda": True, "command": command},
            {"name": "shared-2", "model": "m", "seed": 2, "gpus": 2, "min_vram_gib": 30, "command": command},
            {"name": "cpu", "model": "m", "seed": 3, "command": command},
            {"name": "too-wide", "model": "m", "seed": 4, "gpus": 3, "command": command, "allowed_hosts": ["small"]}]
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs})
    procs.run("load", path)
    big = write_profile(str(tmp_path / "big.toml"), "big", 8, 32, [80, 80, 40, 24])
    small = write_profile(str(tmp_path / "small.toml"), "small", 8, 32, [80, 80])
    assert procs.worker("--burst", profile=big, name="w-big").wait(60) == 0
    assert procs.worker("--burst", profile=small, name="w-small").wait(60) == 0
    got = {p.name: p.read_text() for p in seen.iterdir()}
    assert sorted(got) == ["cpu", "ddp-2", "shared-2", "whole-1"]
    assert len(set(got["ddp-2"].split(","))) == 2 and set(got["ddp-2"].split(",")) <= {"0", "1", "2", "3"}
    assert got["whole-1"] in {"0", "1", "2", "3"}
    assert len(set(got["shared-2"].split(","))) == 2 and set(got["shared-2"].split(",")) <= {"0", "1", "2"}
    assert got["cpu"] == ""
    too_wide = real_store.jobs.get(real_store.jobs.resolve("too-wide"))
    assert too_wide.state is JobState.PENDING and too_wide.attempts == 0
    small_host = load_host_profile(small)
    assert job_reason(load_manifest(path).jobs[4], None, small_host, free_of(small_host)) == \
        "gpus 3 > 2 GPUs on the host"


GPU_BOXES = {  # host: (GPU product name, compute capability, VRAM GiB, how many)
    "h100x8": ("NVIDIA H100 80GB HBM3", "9.0", 80, 8),
    "a100x4": ("NVIDIA A100-SXM4-40GB", "8.0", 40, 4),
    "rtx3090x2": ("NVIDIA GeForce RTX 3090", "8.6", 24, 2),
    "v100x2": ("Tesla V100-SXM2-16GB", "7.0", 16, 2),
    "cpu64": None,
}
RECORD_RUN = ("import json, os, sys, time; t = time.time(); time.sleep(float(sys.argv[2])); "
              "open(os.path.join(sys.argv[1], os.environ['FLEET_JOB_NAME']), 'w').write(json.dumps("
              "{'host': os.environ['FLEET_HOST_NAME'], 'start': t, 'end': time.time(), "
              "'visible': os.environ['CUDA_VISIBLE_DEVICES']}))")


def test_a_gpu_fleet_places_every_job_where_it_fits_and_never_oversubscribes_a_gpu(procs, real_store, tmp_path):
    """Five kinds of box, one `--slots` worker on each (one slot per GPU; four on the CPU box), jobs
    of every GPU shape. From the jobs' own records of where and when they ran: each landed where
    the rule admits it, saw exactly its number of distinct GPUs, no GPU was ever reserved past its
    memory, a job holding its GPUs whole was alone on them, and the slots did run jobs side by side."""
    seen = tmp_path / "seen"
    seen.mkdir()
    shapes = {"ddp-8": ({"gpus": 8}, 1), "ddp-4": ({"gpus": 4}, 3),
              "bf16": ({"gpus": 1, "min_compute_capability": 8.0, "min_vram_gib": 20}, 4),
              "a100-pair": ({"gpus": 2, "gpu_names": ["*A100*"], "min_vram_gib": 10}, 2),
              "wide-vram": ({"gpus": 2, "min_vram_gib": 70}, 2),
              "small": ({"require_cuda": True, "min_vram_gib": 8}, 8),
              "whole": ({"require_cuda": True}, 4), "cpu": ({"min_cores": 8}, 4)}
    jobs = [{"name": f"{shape}-{i}", "model": "m", "seed": 100 * n + i, "min_cores": 0, **fields}
            for n, (shape, (fields, count)) in enumerate(shapes.items()) for i in range(count)]
    recorder = tmp_path / "record_run.py"  # a file, not -c: a command's braces are placeholders
    recorder.write_text(RECORD_RUN)
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "defaults": {
        "command": [sys.executable, str(recorder), str(seen), "0.3"]}, "jobs": jobs})
    assert procs.run("load", path).returncode == 0
    profiles = {host: write_profile(str(tmp_path / f"{host}.toml"), host, 64, 512, [box[2]] * box[3] if box else [],
                                    kind=box[:2] if box else None) for host, box in GPU_BOXES.items()}
    for host, profile in profiles.items():
        procs.worker("--slots", "auto" if GPU_BOXES[host] else "4", profile=profile, name=host)
    wait_for(lambda: real_store.jobs.counts()["finished"] == len(jobs), timeout_s=120, what="every job finished")

    spec = load_manifest(path)
    runs = {name: json.loads((seen / name).read_text()) for name in (j.name for j in spec.jobs)}
    use = []  # (host, gpu, start, end, VRAM held, whole, job)
    for job in spec.jobs:
        run = runs[job.name]
        host = load_host_profile(profiles[run["host"]])
        assert job_reason(job, None, host, free_of(host)) is None, (job.name, run["host"])
        visible = [int(v) for v in run["visible"].split(",")] if run["visible"] else []
        cls = ConstraintClass.of(job, {})
        assert len(visible) == len(set(visible)) == gpu_count(cls, host.cuda), (job.name, run)
        for gpu in visible:
            total = host.gpus[gpu].vram_total_gib
            use.append((run["host"], gpu, run["start"], run["end"], cls.min_vram_gib or total, cls.whole_gpus,
                        job.name))
    for host, gpu, start, end, _, whole, name in use:
        beside = [u for u in use if u[:2] == (host, gpu) and u[6] != name and u[2] < end and start < u[3]]
        total = GPU_BOXES[host][2]
        assert not (whole and beside), (name, beside)
        at_start = [u for u in use if u[:2] == (host, gpu) and u[2] <= start < u[3]]
        assert sum(u[4] for u in at_start) <= total + 1e-9, (host, gpu, at_start)
    assert any(a[0] == b[0] and a[6] != b[6] and a[2] < b[3] and b[2] < a[3] for a in use for b in use), \
        "no two jobs ever ran at once on one box: the slots did not run side by side"
    assert runs["ddp-8-0"]["host"] == "h100x8" and all(runs[f"wide-vram-{i}"]["host"] == "h100x8" for i in range(2))
    assert all(runs[f"a100-pair-{i}"]["host"] == "a100x4" for i in range(2))
    assert all(runs[f"bf16-{i}"]["host"] != "v100x2" for i in range(4))


def test_a_worker_under_systemd_says_ready_pings_its_watchdog_and_keeps_both_from_its_jobs(procs, real_store,
                                                                                           tmp_path):
    """Type=notify with WatchdogSec=: READY=1 once registered, WATCHDOG=1 while idle and while a
    job runs; the job sees neither variable (with NotifyAccess=all it could speak for its worker)."""
    from test_receiver import NotifySocket

    sock_path = str(tmp_path / "notify.sock")
    notify = NotifySocket(sock_path)
    procs.env.update(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="900000")  # a ping every 0.3 s at most
    script = ("import os, time; print('sees', os.environ.get('NOTIFY_SOCKET'), os.environ.get('WATCHDOG_USEC'),"
              " flush=True); time.sleep(2)")
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": [
        {"name": "quiet", "model": "m", "command": [sys.executable, "-c", script]}]})
    try:
        procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w", lease_s=3)
        wait_for(lambda: "READY=1" in notify.messages, what="READY=1")
        wait_for(lambda: notify.messages.count("WATCHDOG=1") >= 2, what="watchdog pings while idle")
        procs.run("load", path)
        wait_for(lambda: real_store.jobs.counts()["running"] == 1, what="the job running")
        pings = notify.messages.count("WATCHDOG=1")
        wait_for(lambda: real_store.jobs.counts()["finished"] == 1, timeout_s=20, what="the job finished")
        assert notify.messages.count("WATCHDOG=1") > pings  # pinged while the job ran, too
        assert "sees None None" in procs.run("logs", "quiet").stdout
    finally:
        notify.close()


def test_rerun_makes_a_finished_job_its_next_attempt_and_keeps_the_earlier_one(procs, real_store, tmp_path):
    """`fleet rerun` (the data was fixed): attempt 2 of a finished job, attempt 1's record and
    output dir intact; refused for a running job, with the reason; a reload never reruns."""
    script = ("import os, time; print('run', os.environ['FLEET_ATTEMPT'], flush=True); "
              "time.sleep(float(os.environ.get('NAP', '0')))")
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": [
        {"name": "fit", "model": "m", "command": [sys.executable, "-c", script]}]})
    procs.run("load", path)
    profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
    assert procs.worker("--burst", profile=profile, name="w").wait(30) == 0
    job_id = real_store.jobs.resolve("fit")
    first = real_store.jobs.attempts(job_id)
    assert [a["outcome"] for a in first] == ["finished"]
    assert procs.run("load", path).returncode == 0 and real_store.jobs.get(job_id).state is JobState.FINISHED
    done = procs.run("rerun", "fit")
    assert done.returncode == 0 and "finished -> pending" in done.stdout
    procs.env["NAP"] = "30"  # the second attempt runs long enough to be refused a rerun
    worker = procs.worker(profile=profile, name="w2")
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.RUNNING, what="attempt 2 running")
    refused = procs.run("rerun", "fit")
    assert refused.returncode == 2 and "not running (it runs now: `fleet cancel` it first" in refused.stdout
    attempts = real_store.jobs.attempts(job_id)
    assert [a["attempt"] for a in attempts] == [1, 2] and attempts[0] == first[0]  # attempt 1 as it was
    with open(os.path.join(first[0]["output_dir"], "log.txt")) as fh:
        assert "run 1" in fh.read()  # its output dir stays
    assert procs.run("cancel", "fit").returncode == 0
    wait_for(lambda: real_store.jobs.get(job_id).state is JobState.CANCELED, what="attempt 2 canceled")
    assert worker.poll() is None


RESUMABLE = """import os, sys
out, resume = os.environ["FLEET_OUTPUT_DIR"], os.environ["FLEET_RESUME_DIR"]
start = int(open(os.path.join(resume, "ckpt")).read()) if resume else 0
print("start", start, "placeholder", sys.argv[1] == resume, "host", repr(os.environ["FLEET_RESUME_HOST"]), flush=True)
for step in range(start, 10):
    with open(os.path.join(out, "ckpt"), "w") as fh:
        fh.write(str(step + 1))
    if step == 4 and start == 0:
        os._exit(3)  # dies halfway through its first attempt, its checkpoint saved
print("done", flush=True)
"""


def test_an_attempt_after_a_failure_resumes_from_the_previous_attempts_checkpoint(procs, real_store, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RESUMABLE)
    path = write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": [
        {"name": "long-fit", "model": "m", "max_attempts": 2, "retry_delay_s": 0,
         "command": [sys.executable, str(script), "{resume_dir}"]}]})
    procs.run("load", path)
    assert procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8),
                        name="w").wait(60) == 0
    job_id = real_store.jobs.resolve("long-fit")
    first, second = real_store.jobs.attempts(job_id)
    assert (first["outcome"], first["exit_code"], second["outcome"]) == ("failed", 3, "finished")
    assert second["resumed_from"] == 1 and "resumed_from" not in first
    assert "start 0 placeholder True host ''" in procs.run("logs", "long-fit", "--attempt", "1").stdout
    assert "start 5 placeholder True host ''" in procs.run("logs", "long-fit", "--attempt", "2").stdout
    with open(os.path.join(second["output_dir"], "ckpt")) as fh:
        assert fh.read() == "10"  # it went on from step 5, it did not start over
    rows = [line.split() for line in procs.run("job", "long-fit").stdout.splitlines() if line[:2] in ("# ", "2 ")]
    assert rows[1][rows[0].index("RESUMED")] == "#1"  # `fleet job` says which attempt it resumed from
