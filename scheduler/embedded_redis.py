"""A private redis-server on a free loopback port with its own temp dir, always stopped.

The demo runs its fleet on one, tests about claims, leases, reloads and crashes
run against one (not only fakeredis), and the benchmarks measure against one.
It binds 127.0.0.1 only and never persists unless asked (AOF for restart tests).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from urllib.parse import quote

import redis

from .errors import FleetError
from .libc import die_with_parent


class RedisServerError(FleetError):
    """The embedded redis-server could not be found or started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER_ENV = "FLEET_REDIS_SERVER"  # another server binary for the demo and the tests (a valkey-server)


def redis_server_binary() -> str | None:
    """The server to start: $FLEET_REDIS_SERVER when set (it must be an executable file), else
    redis-server from PATH or the usual places."""
    chosen = os.environ.get(SERVER_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise RedisServerError(f"{SERVER_ENV}={chosen!r} is not an executable file; point it at a redis-server "
                                   f"or valkey-server binary, or unset it")
        return chosen
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.path.exists(p)), None)


class RedisServer:
    """One redis-server child process; ``url`` points at it; ``stop()`` is idempotent.

    ``exit_with_parent``: the server gets SIGTERM when the process that started it dies, even by
    SIGKILL, so a killed demo leaves no server behind (its temp dir does stay: nobody is left to
    remove it). Off by default: the kernel ties this to the starting *thread*, and a test may start
    a server in a thread that ends before the server should.

    ``unix_socket``: also listen on ``socket_path`` (mode 0700), for ``unix://`` URLs.
    ``extra_args``: more redis-server options, as its command line takes them."""

    def __init__(self, appendonly: bool = False, password: str | None = None, exit_with_parent: bool = False,
                 unix_socket: bool = False, extra_args: tuple[str, ...] = ()):
        binary = redis_server_binary()
        if binary is None:
            raise RedisServerError("redis-server not found: install it (apt-get install redis-server) or run "
                                   "the README's commands, which install it")
        self.dir = tempfile.mkdtemp(prefix="fleet-redis-")
        self.port = free_port()
        self.password = password
        self.args = [binary, self._config_file(password), "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", self.dir, "--save", "", "--appendonly", "yes" if appendonly else "no",
                     "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        self.socket_path = os.path.join(self.dir, "redis.sock") if unix_socket else None
        if self.socket_path:
            self.args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        self.args += list(extra_args)  # e.g. --replicaof HOST PORT, --cluster-enabled yes (tests)
        self.proc: subprocess.Popen | None = None
        self.exit_with_parent = exit_with_parent
        try:
            self.start()
        except BaseException:  # e.g. the demo's SIGTERM while the server starts: no owner would stop it
            self.stop()
            raise

    def _config_file(self, password: str | None) -> str:
        """The password goes in a 0600 file in the server's own dir, not on its command line,
        which every user on the host can read (``ps``) while the server starts."""
        path = os.path.join(self.dir, "redis.conf")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            if password:
                quoted = password.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                fh.write(f'requirepass "{quoted}"\n')
        return path

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        preexec = None
        if self.exit_with_parent:
            preexec = functools.partial(die_with_parent, os.getpid(), signal.SIGTERM)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=preexec)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(self.dir, "redis.log"), errors="replace") as fh:
                        last = (fh.read().strip().splitlines() or ["(no log)"])[-1]
                    self.stop()
                    raise RedisServerError(f"redis-server did not start on 127.0.0.1:{self.port}: {last}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server (keeps its dir, so an AOF restart can follow)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, remove_dir: bool = True) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if remove_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class FakeRedisServer:
    """fakeredis's TCP server in a thread: the demo's announced fallback where no redis-server
    binary can be found or installed. Same ``url``/``stop`` surface as RedisServer."""

    def __init__(self):
        try:
            from fakeredis import TcpFakeServer
        except ImportError:
            raise RedisServerError("no redis-server and no fakeredis to fall back on; run scripts/setup.sh "
                                   "(it installs both)") from None
        import threading

        self.port = free_port()
        self.dir = ""
        self.password = None
        self._server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakeredis", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def __enter__(self) -> "FakeRedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, remove_dir: bool = True) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_local_redis(force_fake: bool = False) -> "RedisServer | FakeRedisServer":
    """A private Redis for the demo: a real redis-server when there is one (which ends with the
    demo, however it ends), else fakeredis (a thread of the demo's, which ends with it anyway)."""
    if not force_fake and redis_server_binary() is not None:
        return RedisServer(exit_with_parent=True)
    return FakeRedisServer()


def dump_namespace(client: redis.Redis, namespace: str = "fleet") -> dict[bytes, bytes]:
    """DUMP of every key of a namespace: byte-for-byte comparison of two store states."""
    pattern = "{" + namespace + "}:*"
    return {key: client.dump(key) for key in sorted(client.scan_iter(match=pattern, count=1000))}
