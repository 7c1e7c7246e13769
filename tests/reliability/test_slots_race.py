"""3 workers x 4 slots race on one host over 200 jobs, with SIGKILLs: the ledger never exceeds
the host, every job finishes, and no job ever runs twice at once.

Twelve slots compete for six cores (each job reserves one). A sampler reads the host's
ledger throughout; the jobs' own records (sidefx.py) say when each execution ran. One
whole worker (supervisor and slots) is SIGKILLed mid-run and replaced; one slot of
another is SIGKILLed and its supervisor restarts it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import psutil
import tomli_w
from support.procs import SIDEFX, wait_for
from test_crash import assert_each_ran_alone, executions

from scheduler.states import JobState

JOBS = 200
CORES = 6
WORKERS = 3
SLOTS = 4


def test_slots_of_three_workers_never_oversubscribe_and_lose_nothing(procs, real_store, tmp_path, tally):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    manifest = {"schema_version": 1,
                "defaults": {"command": [sys.executable, SIDEFX, str(ledger), "{job_id}", "{attempt}", "0.05"],
                             "min_cores": 1, "min_ram_gib": 4, "max_attempts": 10, "retry_delay_s": 0},
                "jobs": [{"name": f"j{i}", "model": "m", "seed": i} for i in range(JOBS)]}
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps(manifest))
    assert procs.run("load", str(path)).returncode == 0
    profile = tmp_path / "host.toml"
    profile.write_text(f'hostname = "racer"\ncuda = false\ncores = {CORES}\nram_gib = 32\n')

    samples, over = [], []
    done = threading.Event()

    def sample_ledger() -> None:
        key = real_store.keys.ledger("racer")
        while not done.is_set():
            cores, ram = real_store.redis.hmget(key, "cores", "ram")
            sample = (float(cores or 0), float(ram or 0))
            samples.append(sample)
            if sample[0] > CORES + 1e-9 or sample[1] > 32 + 1e-9:
                over.append(sample)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample_ledger, daemon=True)
    sampler.start()
    workers = [procs.worker("--slots", str(SLOTS), profile=str(profile), name=f"w{i}", lease_s=2)
               for i in range(WORKERS)]
    try:
        wait_for(lambda: real_store.jobs.counts()["finished"] >= JOBS // 4, timeout_s=120, what="a quarter done")
        os.killpg(workers[0].pid, signal.SIGKILL)  # the whole worker: supervisor and slots
        workers[0].wait(10)
        workers.append(procs.worker("--slots", str(SLOTS), profile=str(profile), name="w0-again", lease_s=2))
        wait_for(lambda: real_store.jobs.counts()["finished"] >= JOBS // 2, timeout_s=120, what="half done")
        slot = psutil.Process(workers[1].pid).children()[0]
        os.kill(slot.pid, signal.SIGKILL)  # one slot: its supervisor restarts it
        wait_for(lambda: real_store.jobs.counts()["finished"] == JOBS, timeout_s=240, what="every job finished")
    finally:
        done.set()
        sampler.join(5)
    assert workers[1].poll() is None and len(psutil.Process(workers[1].pid).children()) == SLOTS, \
        "the supervisor restarted its killed slot"

    assert not over, f"the ledger exceeded the host at {len(over)} of {len(samples)} samples: {over[:5]}"
    assert max(s[0] for s in samples) == CORES, "the race should fill the host"
    runs = executions(str(ledger))
    assert len(runs) == JOBS, "every job ran"
    assert_each_ran_alone(runs)
    records = real_store.jobs.many(real_store.jobs.list_ids(limit=JOBS))
    assert all(r.state is JobState.FINISHED for r in records)
    attempts = sum(r.attempts for r in records)
    # An execution beyond a job's first is one whose attempt a kill ended (lost or interrupted).
    assert sum(len(spans) for spans in runs.values()) <= attempts
    assert len({r.worker for r in records}) >= WORKERS, "every worker should have taken part"
    tally.fault("a whole --slots worker SIGKILLed mid-run")
    tally.fault("one slot SIGKILLed, restarted by its supervisor")
    tally.ran(JOBS, attempts)  # none lost (all finished), none twice at once (checked above)
