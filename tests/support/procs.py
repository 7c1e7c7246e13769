"""Real fleet processes for tests: started in their own sessions, always killed at teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIDEFX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sidefx.py")


def fleet_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "scheduler.cli", *args]


def wait_for(predicate: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.05,
             what: str = "condition", tolerate: tuple[type[BaseException], ...] = ()):
    """Poll ``predicate`` until truthy; fail with ``what`` after ``timeout_s`` (never a blind sleep).
    ``tolerate``: errors that mean "not yet" (a server still starting, a failover under way)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


class FleetProcs:
    """Starts `fleet worker` / `fleet receiver` processes against one Redis and kills them all at the end."""

    def __init__(self, redis_url: str, workdir: str):
        self.redis_url = redis_url
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, FLEET_REDIS_URL=redis_url, PYTHONPATH=REPO, NO_COLOR="1")

    def start(self, *args: str, log_name: str | None = None, prefix: Sequence[str] = ()) -> subprocess.Popen:
        """``prefix``: a command that runs fleet (``setpriv ...`` to start it as another user)."""
        log_path = os.path.join(self.workdir, f"{log_name or args[0]}-{len(self.procs)}.log")
        log = open(log_path, "wb")
        proc = subprocess.Popen([*prefix, *fleet_argv(*args)], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=self.workdir, start_new_session=True)
        proc.log_path = log_path  # type: ignore[attr-defined]
        log.close()
        self.procs.append(proc)
        return proc

    def worker(self, *extra: str, profile: str | None = None, name: str | None = None, lease_s: float = 2.0,
               runs_dir: str | None = None, prefix: Sequence[str] = ()) -> subprocess.Popen:
        args = ["worker", "--lease-s", str(lease_s), "--runs-dir", runs_dir or os.path.join(self.workdir, "runs")]
        if profile:
            args += ["--host-profile", profile]
        if name:
            args += ["--name", name]
        return self.start(*args, *extra, log_name=f"worker-{name or 'x'}", prefix=prefix)

    def run(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(fleet_argv(*args), env=self.env, cwd=self.workdir, capture_output=True, text=True,
                              timeout=timeout_s)

    @staticmethod
    def log_of(proc: subprocess.Popen) -> str:
        with open(proc.log_path) as fh:  # type: ignore[attr-defined]
            return fh.read()

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the worker process only (not its session): what a crash of the worker looks like."""
        if proc.poll() is None:
            os.kill(proc.pid, sig)

    def stop_all(self) -> None:
        """SIGKILL every process started here, with its session, and reap it; then anything
        still running in the workdir. Safe to call twice, and after processes exited."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:  # the leader is gone (exited, or reaped since poll)
                    pass
        # Horses and jobs start their own sessions; anything still holding our workdir goes too.
        _kill_strays(self.workdir)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


def _kill_strays(marker: str) -> None:
    import psutil

    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if marker in cmd or (proc.info["cwd"] or "").startswith(marker):
                if proc.pid != os.getpid():
                    proc.kill()
        except psutil.Error:
            pass


def sidefx_manifest(workdir, jobs: list[dict], sleep_s: float, min_cores: int = 0) -> tuple[str, str]:
    """A manifest whose jobs run sidefx.py for ``sleep_s``; returns (manifest path, ledger dir).
    Its retries are claimable at once (retry_delay_s = 0): these tests count executions and
    overlaps, and tests/test_retries.py has the delay."""
    import tomli_w

    ledger = os.path.join(str(workdir), "ledger")
    os.makedirs(ledger)
    manifest = {"schema_version": 1,
                "defaults": {"command": [sys.executable, SIDEFX, ledger, "{job_id}", "{attempt}", str(sleep_s)],
                             "min_cores": min_cores, "retry_delay_s": 0},
                "jobs": jobs}
    path = os.path.join(str(workdir), "m.toml")
    with open(path, "w") as fh:
        fh.write(tomli_w.dumps(manifest))
    return path, ledger


def start_receiver_and_two_workers(procs: FleetProcs, store, workdir, jobs: int, sleep_s: float,
                                   lease_s: float = 3) -> tuple[subprocess.Popen, list[subprocess.Popen], str]:
    """A receiver serving ``jobs`` sidefx jobs (job-0, job-1, ...) and two one-core workers,
    returned once both workers are running a job: the stage for an outage test."""
    path, ledger = sidefx_manifest(workdir, [{"name": f"job-{i}", "model": "m", "seed": i} for i in range(jobs)],
                                   sleep_s=sleep_s, min_cores=1)
    receiver = procs.start("receiver", "--manifest", path, "--lease-s", str(lease_s))
    wait_for(lambda: store.jobs.counts()["pending"] == jobs, what="the receiver's first load")
    workers = [procs.worker(profile=write_profile(os.path.join(str(workdir), f"h{i}.toml"), f"box{i}", 1, 8),
                            name=f"w{i}", lease_s=lease_s) for i in range(2)]
    wait_for(lambda: len(os.listdir(ledger)) >= 2, what="both workers running a job")
    return receiver, workers, ledger


def assert_each_ran_once(store, ledger: str, jobs: int) -> None:
    """job-0 ... job-<jobs-1> all finished with one attempt, and the side-effect ledger holds
    exactly one execution of each."""
    from scheduler.states import JobState
    from scheduler.store.claims import Claims

    for i in range(jobs):
        record = store.jobs.get(store.jobs.resolve(f"job-{i}"))
        assert record.state is JobState.FINISHED and record.attempts == 1, (
            record.name, record.state, Claims(store.redis, store.keys).attempts(record.job_id))
    executions = sorted(os.listdir(ledger))
    assert len(executions) == jobs and len({name.split(".")[0] for name in executions}) == jobs, executions


def write_profile(path: str, hostname: str, cores: int, ram_gib: float, gpus: list[float] = (),
                  kind: tuple[str, str] | None = None) -> str:
    """A host profile; ``gpus`` their VRAM in GiB, ``kind`` all of their (product name, compute
    capability), else each named by its size and of no known capability."""
    lines = [f'hostname = "{hostname}"', f"cuda = {'true' if gpus else 'false'}", f"cores = {cores}",
             f"ram_gib = {ram_gib}"]
    for i, vram in enumerate(gpus):
        name = kind[0] if kind else f"GPU{i}-{vram:g}G"
        lines += ["[[gpus]]", f'name = "{name}"', f"vram_gib = {vram}"]
        if kind:
            lines.append(f'compute_capability = "{kind[1]}"')
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
