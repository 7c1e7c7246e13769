"""A worker's exit does not wait out rq's 1 s join of its pubsub listener.

rq sends UNSUBSCRIBE and only then tells the listener thread to stop; when the reply
wakes the thread first, it waits again for a message that never comes and rq's join
gives up after a second. fleet's worker stops the thread first. Run in a subprocess:
rq must be imported with the namespace's key prefix, once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

CHECK = """
import logging
from worker.rq_worker import FleetWorker

calls = []
class Thread:
    def stop(self): calls.append("stop")
    def join(self, timeout=None): calls.append("join")
class PubSub:
    def unsubscribe(self): calls.append("unsubscribe")
    def close(self): calls.append("close")

worker = FleetWorker.__new__(FleetWorker)  # no Redis: only the order of the calls matters
worker.pubsub_thread, worker.pubsub, worker.name, worker.log = Thread(), PubSub(), "w", logging.getLogger("t")
worker.unsubscribe()
print(",".join(calls))
"""


def test_the_listener_is_told_to_stop_before_the_unsubscribe_that_wakes_it():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True,
                         env=dict(os.environ, RQ_KEY_PREFIX="{fleet}:rq", PYTHONPATH=repo)).stdout.strip()
    calls = out.split(",")
    assert calls.index("stop") < calls.index("unsubscribe") < calls.index("join"), out
