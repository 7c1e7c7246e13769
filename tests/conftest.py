"""Shared fixtures: a real redis-server per test session (flushed per test), fakeredis, and\nreal fleet processes that are always killed (``procs``)."""

from __future__ import annotations

import os
import sys

import fakeredis
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from scheduler.embedded_redis import RedisServer  # noqa: E402
from support.stores import make_store  # noqa: E402

from scheduler.keys import Keys  # noqa: E402
from scheduler.settings import Settings  # noqa: E402
from scheduler.store import Store  # noqa: E402


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def real_redis(redis_server):
    client = redis_server.client()
    client.flushall()
    client.script_flush()
    yield client
    client.close()


@pytest.fixture
def fake_redis():
    return fakeredis.FakeRedis()


@pytest.fixture(params=["fakeredis", "redis-server"])
def any_redis(request):
    """The same test against fakeredis (with Lua via lupa) and a real redis-server."""
    if request.param == "fakeredis":
        return fakeredis.FakeRedis()
    return request.getfixturevalue("real_redis")


@pytest.fixture
def store(any_redis):
    return make_store(any_redis)


@pytest.fixture
def real_store(real_redis, redis_server):
    return Store(real_redis, Keys("fleet"), Settings(redis_url=redis_server.url))


@pytest.fixture
def procs(redis_server, real_redis, tmp_path):
    """Real `fleet` processes (support/procs.py) on the session's redis-server, flushed first,
    working in ``tmp_path``. At teardown, passed or failed, every process started through it
    is killed with its whole session and reaped, and so is anything still running in
    ``tmp_path`` (horses and jobs start sessions of their own)."""
    from support.procs import FleetProcs

    fleet = FleetProcs(redis_server.url, str(tmp_path))
    try:
        yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture
def tally():
    """Counts what a reliability test checked (support/tally.py); summed over the run."""
    from support.tally import TALLY

    return TALLY


def pytest_terminal_summary(terminalreporter):
    from support.tally import TALLY

    lines = TALLY.lines()
    if lines:
        terminalreporter.section("reliability tally")
        for line in lines:
            terminalreporter.write_line(line)
