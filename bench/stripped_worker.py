"""`fleet worker` whose work horse does less, to split bench/dispatch.py's figure into its parts.

What a fleet job costs on top of rq has three parts: fleet's dispatch (the claim, that is
the matching, plus the lease, rq's Job record and registries, the finish script), exec'ing
the job's command, and the attempt's files (job.json, log.txt, attempt.json, the artifact
manifest; the worker still makes the output dir). $FLEET_BENCH_HORSE says what the horse
keeps:

  command  exec the command and wait for it, writing none of the attempt's files
  nothing  report "finished" at once: fleet's dispatch alone

Bench-only: a real fleet job always runs its command in a process of its own, because the
worker's memory holds the Redis password and the job must not see it.

usage: FLEET_BENCH_HORSE=command|nothing python bench/stripped_worker.py worker --burst [options]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scheduler.cli import main  # noqa: E402
from scheduler.states import Outcome  # noqa: E402
from worker import execute  # noqa: E402
from worker.attempt import Attempt  # noqa: E402
from worker.runner import AttemptResult  # noqa: E402


def _nothing(ctx: Attempt) -> execute.Handoff:
    now = time.time()
    return execute.Handoff(AttemptResult(Outcome.FINISHED, 0, "", now, now))


def _command_only(ctx: Attempt) -> execute.Handoff:
    started = time.time()
    code = subprocess.run(ctx.argv, env=ctx.env, cwd=ctx.out_dir, stdin=subprocess.DEVNULL, start_new_session=True,
                          close_fds=True).returncode
    outcome = Outcome.FINISHED if code == 0 else Outcome.FAILED
    return execute.Handoff(AttemptResult(outcome, code, "", started, time.time()))


HORSES = {"nothing": _nothing, "command": _command_only}

if __name__ == "__main__":
    execute._run = HORSES[os.environ["FLEET_BENCH_HORSE"]]
    sys.exit(main(sys.argv[1:]))
