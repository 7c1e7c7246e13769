"""Connection settings: one value built from flags and environment, passed down.

Redis URLs may carry passwords (``redis://:secret@host``, ``?password=secret``) and TLS
(``rediss://``); this object is what gets logged and printed, so its ``repr`` and
:meth:`safe_url` show the URL only as :func:`~scheduler.redis_url.redact_url` makes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import ConfigError
from .names import NAMESPACE_RE
from .redis_url import SENTINEL_SCHEME, SentinelTarget, redact_url, sentinel_target, url_problem

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NAMESPACE = "fleet"
ENV_REDIS_URL = "FLEET_REDIS_URL"
ENV_NAMESPACE = "FLEET_NAMESPACE"
# A worker claims nothing while its runs dir has less free space (worker/disk.py); here so the
# CLI can show the default without importing the worker.
DEFAULT_MIN_FREE_MIB = 100.0



ENV_FILE_HINT = "an environment file such as /etc/fleet/fleet.env (mode 0600)"


def check_flags(redis_url: str | None, namespace: str | None) -> None:
    """Refuse flag values no one can mean: ``--namespace ''`` used to fall back to the
    environment or default without a word, so a script whose variable was unset ran on
    another fleet's namespace. None is a flag not given.

    A --redis-url with anything :func:`redact_url` hides (a password, a lone userinfo,
    ``?password=``) is refused too: every user on the host reads a command line (``ps``,
    ``/proc/PID/cmdline``), and the jobs of a worker started so read it from their parent."""
    for flag, value in (("--redis-url", redis_url), ("--namespace", namespace)):
        if value == "":
            raise ConfigError(f"{flag} is given but empty; give a value or leave the flag out")
    if redis_url and "://" in redis_url and redact_url(redis_url) != redis_url:
        raise ConfigError(f"--redis-url {redact_url(redis_url)!r} carries a credential, and a command line is "
                          f"visible to every user on this host (ps); leave the flag out and set {ENV_REDIS_URL} "
                          f"in {ENV_FILE_HINT}")


@dataclass(frozen=True)
class Settings:
    """Where fleet's Redis is and which namespace of it this process works in."""

    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = DEFAULT_NAMESPACE
    socket_timeout_s: float = field(default=10.0, compare=False)

    def __post_init__(self) -> None:
        problem = url_problem(self.redis_url)
        if problem:
            raise ConfigError(f"redis url {redact_url(self.redis_url)!r} {problem}; fix --redis-url or "
                              f"{ENV_REDIS_URL}")
        if not NAMESPACE_RE.fullmatch(self.namespace):
            raise ConfigError(
                f"namespace {self.namespace!r} must be 1-64 letters, digits, '_', '.' or '-' "
                f"(starting with a letter or digit); set --namespace or {ENV_NAMESPACE}"
            )

    @classmethod
    def from_env(cls, redis_url: str | None = None, namespace: str | None = None) -> "Settings":
        """Flags win over environment, environment over defaults. An empty variable counts as
        unset (``FLEET_NAMESPACE=`` in an environment file), an empty flag is refused."""
        check_flags(redis_url, namespace)
        return cls(
            redis_url=redis_url or os.environ.get(ENV_REDIS_URL) or DEFAULT_REDIS_URL,
            namespace=namespace or os.environ.get(ENV_NAMESPACE) or DEFAULT_NAMESPACE,
        )

    def safe_url(self) -> str:
        return redact_url(self.redis_url)

    def __repr__(self) -> str:
        return f"Settings(redis_url={self.safe_url()!r}, namespace={self.namespace!r})"

    def connect(self, socket_timeout_s: float | None = None):  # -> redis.Redis (redis kept out of import time)
        """A client with fleet's timeouts; raises nothing until first use."""
        import redis

        _treat_busy_as_unavailable()
        options = dict(socket_timeout=socket_timeout_s or self.socket_timeout_s,
                       socket_connect_timeout=self.socket_timeout_s, health_check_interval=30, **_driver_info())
        if self.sentinel:
            return _sentinel_master(sentinel_target(self.redis_url), options)
        if not self.redis_url.startswith("unix://"):  # a cluster node's URL works as any (slot_owner.py)
            from .slot_owner import SlotFollowingConnection, SlotFollowingSSLConnection, slot_retry

            tls = self.redis_url.startswith("rediss://")
            options.update(connection_class=SlotFollowingSSLConnection if tls else SlotFollowingConnection,
                           slot_owner={}, retry=slot_retry())
        return redis.Redis.from_url(self.redis_url, **options)

    @property
    def sentinel(self) -> bool:
        """Whether the URL names a Sentinel-monitored service (redis+sentinel://)."""
        return self.redis_url.startswith(SENTINEL_SCHEME + "://")


def _sentinel_master(target: SentinelTarget, options: dict):
    """A client of the service's current master, as its sentinels name it. redis-py's
    sentinel pool asks them again whenever the master it had is gone or answers READONLY
    (demoted by a failover), raising a ConnectionError once, which every fleet process
    already waits out and retries: workers, receiver and CLI follow a failover by themselves."""
    from redis.sentinel import Sentinel

    sentinel_options = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    sentinels = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options, **sentinel_options)
    return sentinels.master_for(target.service, db=target.db, username=target.username, password=target.password,
                                **options)


@lru_cache(maxsize=None)
def _treat_busy_as_unavailable() -> None:
    """While one client's Lua script runs past Redis's lua-time-limit (a load of tens of
    thousands of jobs), Redis answers every other client ``BUSY`` without running its
    command. redis-py raises a plain ResponseError for that, which stopped every worker;
    like ``LOADING`` it means "up, but cannot serve yet", so it gets redis-py's own class
    for that (a ConnectionError): every retry and backoff path then waits it out. Safe to
    retry: a command answered BUSY was not executed."""
    from redis._parsers.base import BaseParser
    from redis.exceptions import BusyLoadingError

    BaseParser.EXCEPTION_CLASSES.setdefault("BUSY", BusyLoadingError)


@lru_cache(maxsize=None)
def _driver_info() -> dict:
    """No ``CLIENT SETINFO`` on connect: redis-py sends its library name and version as two
    sequential round trips on every new connection, and rq's work horse opens one per job,
    for two fields that only ``CLIENT LIST`` shows (bench/dispatch.py could not tell the
    difference from its noise). redis-py 8 would also re-read its version from package
    metadata each time (~3 ms)."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py 5-7
        return {"lib_name": None, "lib_version": None}
    return {"driver_info": DriverInfo(name=None, lib_version=None)}
