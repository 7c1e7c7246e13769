"""A warm stop that lands after the worker's last look, before the work horse is forked,
still stops the job gently.

execute_job hands back a claim whose stop came before it; a SIGTERM between that check
and the fork used to be dropped (the handler wrote the horse's stop byte only once a horse
existed), so the job ran to its end after the warm stop (CI saw a --slots worker finish one
job too many). Run in a subprocess: rq must be imported with the namespace's key prefix,
once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

CHECK = """
import logging, os
from types import SimpleNamespace
from worker import execute
from worker.rq_worker import FleetWorker

read_fd, write_fd = os.pipe()
os.set_blocking(read_fd, False)
published = []
worker = FleetWorker.__new__(FleetWorker)  # no Redis: what reaches the horse's stop pipe is the question
worker.name, worker.log, worker._horse_pid, worker._claim = "w", logging.getLogger("t"), 0, None
worker.fleet = SimpleNamespace(publish=lambda *args: published.append(args))
worker._attempt = SimpleNamespace(name="job", stop_grace_s=5.0, stop_read_fd=read_fd, stop_write_fd=write_fd)
worker.handle_warm_shutdown_request()  # the SIGTERM, with the claim prepared and no horse yet
print(execute._stop_asked(read_fd), len(published))
"""


def test_a_stop_before_the_fork_waits_in_the_pipe_for_the_horse():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True,
                         env=dict(os.environ, RQ_KEY_PREFIX="{fleet}:rq", PYTHONPATH=repo)).stdout.split()
    assert out[0] == "True", "the horse's first poll must see the warm stop"
    assert out[1] == "0", "a signal handler must not talk to Redis: it may interrupt the loop's own call"
