"""The Redis password: never printed or logged in any URL form (real fleet processes on a
redis-server with requirepass)."""

from __future__ import annotations

import os
import signal

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from support.procs import FleetProcs, wait_for

from scheduler.embedded_redis import RedisServer, free_port

PASSWORD = "Sw0rdfish-9f3e"  # distinctive, so a leak anywhere in the output is found
WRONG = "Wr0ngHorse-51c2"


@pytest.fixture(scope="module")
def locked_redis():
    server = RedisServer(password=PASSWORD, unix_socket=True)
    yield server
    server.stop()


def url_form(form: str, password: str, port: int, socket_path: str) -> str:
    """The same Redis in each way a URL can carry its password."""
    tcp = f"127.0.0.1:{port}"
    return {"userinfo": f"redis://:{password}@{tcp}/0",
            "user-and-password": f"redis://default:{password}@{tcp}/0",
            "lone-userinfo": f"redis://{password}@{tcp}/0",  # redis-py sends it as a username
            "query": f"redis://{tcp}/0?password={password}",
            "unix-query": f"unix://{socket_path}?password={password}"}[form]


FORMS = ["userinfo", "user-and-password", "lone-userinfo", "query", "unix-query"]


@pytest.mark.parametrize("form", FORMS)
def test_no_url_form_prints_or_logs_the_password(locked_redis, tmp_path, form):
    works = form != "lone-userinfo"  # a lone userinfo is a username: the server refuses it

    def procs_for(password: str, port: int = locked_redis.port, socket_path: str = locked_redis.socket_path):
        workdir = tmp_path / f"{password}-{port}"
        workdir.mkdir(exist_ok=True)
        return FleetProcs(url_form(form, password, port, socket_path), str(workdir))

    outputs = []
    right = procs_for(PASSWORD)
    status = right.run("status")
    outputs.append(status.stdout + status.stderr)
    assert status.returncode == (0 if works else 1), status.stderr
    if works:
        assert status.stdout.startswith("namespace fleet @ ") and "***" in status.stdout.splitlines()[0]

    wrong = procs_for(WRONG).run("status")
    outputs.append(wrong.stdout + wrong.stderr)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "rejected the credentials" in wrong.stderr

    away = procs_for(PASSWORD, free_port(), str(tmp_path / "no-such.sock")).run("status")
    outputs.append(away.stdout + away.stderr)
    assert away.returncode == 1 and "cannot reach Redis" in away.stderr

    manifest = tmp_path / "m.toml"
    manifest.write_text('schema_version = 1\n[[jobs]]\nname = "a"\nmodel = "m"\ncommand = ["true"]\n')
    try:
        receiver = right.start("receiver", "--manifest", str(manifest))
        if works:
            wait_for(lambda: "receiver ready" in right.log_of(receiver), what="the receiver's ready line")
            receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(30) == (0 if works else 1), right.log_of(receiver)
        outputs.append(right.log_of(receiver))
    finally:
        right.stop_all()

    for text in outputs:
        assert PASSWORD not in text and WRONG not in text, text
    if works:
        assert "***" in next(line for line in outputs[-1].splitlines() if "receiver ready" in line)



@pytest.mark.parametrize("password", [PASSWORD, 'p@ss w"rd\\/?#%'])
def test_the_embedded_server_reads_its_password_from_a_private_file_not_its_command_line(password):
    """Every user on the host can read a command line (``ps``), redis-server's too while it starts."""
    with RedisServer(password=password) as server:
        assert not any(password in arg for arg in server.args), server.args
        assert all(os.stat(arg).st_mode & 0o077 == 0 for arg in server.args if arg.endswith(".conf"))
        with pytest.raises(redis.AuthenticationError):  # no retries: redis-py would back off for seconds
            redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0)).ping()
        assert server.client().ping()
