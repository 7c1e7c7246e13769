"""``fleet demo``: a whole fleet on this machine, start to summary, leaving nothing behind.

It starts (or uses) a Redis, loads ``manifests/demo.toml`` through a real
receiver, starts one worker probed for real on this host plus one simulated
worker per ``manifests/hosts/*.toml``, shows live progress, then prints where
each job ran and why, the best run, and why the impossible job never ran.
Every child runs in its own session and is killed on every exit path: an error, the
end, Ctrl-C, SIGTERM, SIGHUP (:class:`Stopped`), and even a SIGKILL of the demo itself
(the kernel ends its children then, see :func:`scheduler.libc.die_with_parent`).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TextIO

from ..artifacts import verify
from ..client import Client
from ..dashboard.app import Dashboard
from ..dashboard.server import make_server, serve_in_thread, url_of
from ..embedded_redis import FakeRedisServer, start_local_redis
from ..errors import FleetError, UsageError
from ..explain import explanation
from ..libc import die_with_parent
from ..manifest import load_manifest
from ..matching import free_of, job_reason
from ..runs_layout import UnsafePathError, output_dir, result_file
from ..settings import Settings
from ..states import JobState
from ..store import Store
from ..store.claims import output_dir_of
from ..table import render, write_line

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(REPO, "manifests")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill/timeout, a closed terminal


class Stopped(BaseException):
    """A stop signal, raised wherever the demo is, as Ctrl-C raises KeyboardInterrupt: SIGTERM and
    SIGHUP would otherwise end the process on the spot, skipping the cleanup and leaving every child
    and temp dir behind. A BaseException, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: object) -> None:
    _ignore_stop_signals()  # a second one (an impatient Ctrl-C) must not cut the cleanup short
    raise Stopped(signum)


def _ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@dataclass
class DemoOptions:
    redis_url: str | None
    namespace: str
    manifest: str
    hosts_glob: str
    keep: bool
    timeout_s: float
    fake_redis: bool = False


class Demo:
    def __init__(self, options: DemoOptions, out: TextIO):
        self.o = options
        self.out = out
        self.tmp = tempfile.mkdtemp(prefix="fleet-demo-")
        self.server = None
        self.dashboard = None  # `fleet dashboard`'s server, in a thread of this process
        self.children: list[subprocess.Popen] = []

    # -- processes ---------------------------------------------------------------
    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log_path = os.path.join(self.tmp, f"{name}.log")
        log = open(log_path, "wb")
        env = dict(os.environ, FLEET_REDIS_URL=self.settings.redis_url, FLEET_NAMESPACE=self.o.namespace,
                   PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        # SIGKILL when the demo dies without its cleanup: a worker's SIGTERM is a warm stop that
        # waits forever to record its job in the Redis that died with the demo. Its work horse
        # stops the job once its worker is gone (worker.execute).
        proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=self.tmp, start_new_session=True,
                                preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGKILL))
        log.close()
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.children.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.dashboard:
            self.dashboard.shutdown()
            self.dashboard.server_close()
        if self.server:
            self.server.stop()
        if self.o.keep:
            self.out.write(f"kept {self.tmp} (runs/, logs)\n")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the show ----------------------------------------------------------------
    def run(self) -> int:
        manifest = load_manifest(self.o.manifest)
        profiles = sorted(glob.glob(self.o.hosts_glob))
        if self.o.redis_url:
            self.settings = Settings(redis_url=self.o.redis_url, namespace=self.o.namespace)
            where = f"Redis at {self.settings.safe_url()}"
        else:
            self.server = start_local_redis(force_fake=self.o.fake_redis)
            self.settings = Settings(redis_url=self.server.url, namespace=self.o.namespace)
            if isinstance(self.server, FakeRedisServer):
                where = (f"fakeredis's TCP server on 127.0.0.1:{self.server.port} (FALLBACK: no redis-server "
                         f"binary here; install one with `apt-get install redis-server` for the real thing)")
            else:
                where = f"a private redis-server on 127.0.0.1:{self.server.port} (temp dir {self.server.dir})"
        self.out.write(f"fleet demo: {len(manifest.jobs)} jobs from {self.o.manifest} on {where}\n")
        store = Store.connect(self.settings)
        self.dashboard = make_server(Dashboard(Client(store=store)), "127.0.0.1", 0)  # any free port
        serve_in_thread(self.dashboard)
        self.out.write(f"dashboard: {url_of(self.dashboard)} (while the demo runs)\n")
        self._spawn("receiver", "receiver", "--manifest", os.path.abspath(self.o.manifest), "--lease-s", "5",
                    "--reap-interval-s", "0.5")
        runs = os.path.join(self.tmp, "runs")
        self._spawn("worker-local", "worker", "--runs-dir", runs, "--lease-s", "5", "--name", "local")
        for profile in profiles:
            name = os.path.splitext(os.path.basename(profile))[0]
            self._spawn(f"worker-{name}", "worker", "--host-profile", profile, "--runs-dir", runs, "--lease-s", "5",
                        "--name", name)
        self.out.write(f"started a receiver and {1 + len(profiles)} workers: this host (probed) + "
                       f"{', '.join(os.path.basename(p)[:-5] for p in profiles)} (simulated)\n")
        total = len(manifest.jobs)
        deadline = time.monotonic() + self.o.timeout_s
        unrunnable: list[str] = []
        while True:
            self._check_children()
            counts = store.jobs.counts()
            workers = [w for w in store.workers() if w.live]
            unrunnable = self._unrunnable(store, manifest, workers)
            done = counts["finished"] + counts["failed"]
            self._progress(counts, len(workers), total)
            if workers and counts["running"] == 0 and done + len(unrunnable) >= total:
                break
            if time.monotonic() > deadline:
                raise FleetError(f"demo did not finish within {self.o.timeout_s:.0f}s; logs in {self.tmp} "
                                 f"(rerun with --keep to inspect them)")
            time.sleep(0.5)
        self.out.write("\n")
        self._summary(store, manifest, runs, unrunnable)
        return 0

    def _verify_line(self, store: Store, manifest) -> str:
        """`fleet verify` over every finished job: re-hash its outputs against its manifest."""
        checked, files, bad = 0, 0, []
        for job in manifest.jobs:
            last = store.jobs.last_finished(job.job_id)
            recorded = store.jobs.artifacts(job.job_id, last["attempt"]) if last else None
            if recorded is None:
                continue
            checked += 1
            files += len(recorded["files"])
            if not verify(output_dir_of(last), recorded).ok:
                bad.append(job.name)
        if bad:
            return f"artifacts: MISMATCH in {', '.join(bad)} (`fleet verify JOB` names the files)"
        return f"artifacts: {checked} finished jobs verified, {files} files match their sha256 manifests"

    def _check_children(self) -> None:
        for proc in self.children:
            if proc.poll() is not None:
                with open(proc.log_path) as fh:  # type: ignore[attr-defined]
                    tail = fh.read().strip().splitlines()[-1:] or ["(no output)"]
                raise FleetError(f"demo process `fleet {' '.join(proc.args[3:])}` exited with code {proc.returncode}: "
                                 f"{tail[0]}")

    def _progress(self, counts: dict, workers: int, total: int) -> None:
        line = (f"  {counts['finished']}/{total} finished, {counts['running']} running, {counts['pending']} pending, "
                f"{counts['failed']} failed; {workers} live workers")
        if self.out.isatty():
            self.out.write("\r" + line.ljust(100))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _unrunnable(self, store: Store, manifest, workers) -> list[str]:
        """Pending jobs no live worker could run even when idle."""
        names = []
        for job in manifest.jobs:
            if not workers:
                break
            if all(job_reason(job, manifest.hosts.get(w.host.hostname), w.host, free_of(w.host)) for w in workers):
                names.append(job.name)
        return names

    def _summary(self, store: Store, manifest, runs: str, unrunnable: list[str]) -> None:
        workers = {w.name: w for w in store.workers()}
        rows, best = [], None
        for job in manifest.jobs:
            record = store.jobs.get(job.job_id)
            result = _result(runs, job.name, job.job_id, record.attempts)
            acc = result.get("accuracy")
            if acc is not None and (best is None or acc > best[1]):
                best = (job.name, acc, record.host)
            last = store.jobs.last_finished(job.job_id)
            gpu_key = last.get("gpu", "") if last else ""
            rows.append([job.name, record.state.value, record.host or "-", _why(job, record, workers, gpu_key),
                         f"{acc:.3f}" if acc is not None else "-"])
        self.out.write("\nwhere each job ran and why:\n")
        self.out.write(render(["JOB", "STATE", "HOST", "WHY THERE", "ACCURACY"], rows, self.out) + "\n")
        if best:
            self.out.write("\n")
            write_line(self.out, f"best run by accuracy: {best[0]} ({best[1]:.3f}) on {best[2]} "
                                 f"(`fleet compare --all` ranks them all)")
        self.out.write(self._verify_line(store, manifest) + "\n")
        for name in unrunnable:
            record = store.jobs.get(store.jobs.resolve(name))
            why = explanation(store.explain_view(record))
            self.out.write("\n`fleet explain " + name + "`:\n")
            for line in why.lines():
                write_line(self.out, line)


def _result(runs: str, name: str, job_id: str, attempt: int) -> dict:
    try:
        with open(result_file(output_dir(runs, name, job_id, attempt))) as fh:
            return json.load(fh)
    except (OSError, ValueError, UnsafePathError):  # attempt 0: the job never ran
        return {}


def _why(job, record, workers, gpu_keys: str) -> str:
    """The constraints that decided the placement, in words, and the GPUs (of ledger keys
    ``gpu_keys``, comma-separated) the finished attempt had reserved."""
    if record.state is not JobState.FINISHED:
        return "-"
    s = job.scheduling
    parts = []
    if s["require_cuda"]:
        parts.append(f"CUDA, {s['min_vram_gib']:g} GiB VRAM" if s["min_vram_gib"] else "CUDA")
    if s["min_ram_gib"] >= 32:
        parts.append(f"{s['min_ram_gib']:g} GiB RAM")
    if s["allowed_hosts"] or s["denied_hosts"]:
        parts.append("host lists")
    if s["after"]:
        parts.append(f"waited for {', '.join(s['after'])}")
    worker = workers.get(record.worker or "")
    wanted = gpu_keys.split(",") if gpu_keys else []
    gpus = [g for g in worker.host.gpus if g.ledger_key in wanted] if worker else []
    if len(gpus) == 1:
        parts.append(f"on GPU {gpus[0].index}: {gpus[0].name} {gpus[0].vram_total_gib:g}G")
    elif gpus:
        parts.append(f"on GPUs {','.join(str(g.index) for g in gpus)}: {len(gpus)}x {gpus[0].name}")
    return "; ".join(parts) or "CPU job: CPU-only hosts first, then host priority"


def run_demo(options: DemoOptions, out: TextIO) -> int:
    if not os.path.exists(options.manifest):
        raise UsageError(f"demo manifest {options.manifest} not found; pass --manifest")
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:  # nohup's, or a background job's Ctrl-C: theirs to ignore
            signal.signal(sig, _raise_stopped)
    demo = None
    try:
        demo = Demo(options, out)
        return demo.run()
    except Stopped as stopped:
        return 128 + stopped.signum  # the shell's convention: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP
    finally:
        _ignore_stop_signals()  # from here no stop signal may cut the cleanup short
        if demo is not None:
            demo.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
