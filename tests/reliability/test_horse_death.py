"""The work horse dies (SIGKILL) while its job runs: the job's processes die with the attempt.

"Nothing lost" here: every job ends finished, each attempt recorded with an outcome
(the horse's death as `crashed`). "Never twice at once": no execution of a job is
still alive (writing its ledger) after the next execution of the same job started;
every process an execution left behind, helpers that left its session included, is
gone before the job can be claimed again.
"""

from __future__ import annotations

import os
import signal
import sys

import psutil
import tomli_w
from support.procs import SIDEFX, wait_for, write_profile
from test_crash import executions

from scheduler.store.claims import Claims

KILLS = 3
HELPER = """
import os, subprocess, sys, time
# A helper that leaves the job's session (setsid) and so its process group: only the
# reaper of the job's orphans can still find it.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def test_killing_the_work_horse_ends_the_job_before_it_runs_again(procs, real_store, real_redis, tmp_path, tally):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER)
    manifest = {"schema_version": 1,
                "defaults": {"command": [sys.executable, str(helper), SIDEFX, str(ledger), "{job_id}", "{attempt}",
                                         "2.5"], "max_attempts": 10, "min_cores": 0, "retry_delay_s": 0},
                "jobs": [{"name": "victim", "model": "m"}]}
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps(manifest))
    assert procs.run("load", str(path)).returncode == 0
    worker = procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 4, 8), name="w", lease_s=3)
    for kill in range(1, KILLS + 1):
        horse = wait_for(lambda: _running_horse(worker.pid, ledger, kill), timeout_s=30,
                         what=f"execution {kill} of the job running under a work horse")
        os.kill(horse.pid, signal.SIGKILL)
        tally.fault(f"SIGKILL of the work horse ({kill})")
    wait_for(lambda: real_store.jobs.get(real_store.jobs.resolve("victim")).state.value == "finished",
             timeout_s=60, what="the job to finish after the horse was killed")

    record = real_store.jobs.get(real_store.jobs.resolve("victim"))
    attempts = Claims(real_redis, real_store.keys).attempts(record.job_id)
    assert [a["outcome"] for a in attempts] == ["crashed"] * KILLS + ["finished"], attempts
    spans = sorted(executions(str(ledger))[record.job_id])
    assert len(spans) == KILLS + 1
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"an execution outlived its killed horse into the next attempt: {spans}"
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if "time.sleep(120)" in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], "a helper of a killed attempt is still running"
    tally.ran(1, len(attempts))


def _running_horse(worker_pid: int, ledger, execution: int):
    """The worker's work horse once the job's ``execution``-th run is under way (its ledger file exists)."""
    if len(os.listdir(ledger)) < execution:
        return None
    try:
        children = psutil.Process(worker_pid).children()
    except psutil.Error:
        return None
    return next((c for c in children if c.children()), None)
