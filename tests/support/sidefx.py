"""A job command for tests: records each execution so tests count side effects and spot overlaps.

usage: python sidefx.py LEDGER_DIR JOB_ID ATTEMPT SLEEP_S [EXIT_CODE]
Writes LEDGER_DIR/<job_id>.<attempt>.<pid>: "start <t> <host>", then "alive <t>" every
50 ms while it works, then "end <t>". The last timestamp is when it stopped,
however it stopped (a SIGKILLed execution simply has no "end" line).
Under a fleet worker it also reports a metric per tick ({"tick": n} to $FLEET_METRICS),
so outage tests can count metrics lines against what reached Redis.
"""

import os
import sys
import time

ledger, job_id, attempt, sleep_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
code = int(sys.argv[5]) if len(sys.argv) > 5 else 0
path = os.path.join(ledger, f"{job_id}.{attempt}.{os.getpid()}")
metrics_path = os.environ.get("FLEET_METRICS") or os.devnull
with open(path, "w", buffering=1) as fh, open(metrics_path, "a", buffering=1) as metrics:
    fh.write(f"start {time.time()} {os.environ.get('FLEET_HOST_NAME', '')}\n")
    deadline = time.time() + sleep_s
    tick = 0
    while time.time() < deadline:
        time.sleep(0.05)
        fh.write(f"alive {time.time()}\n")
        tick += 1
        metrics.write(f'{{"tick": {tick}}}\n')
    fh.write(f"end {time.time()}\n")
sys.exit(code)
