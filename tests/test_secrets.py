"""The Redis password: never printed or logged in any URL form, never readable by a job
(real fleet processes on a redis-server with requirepass)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sys
import tempfile

import pytest
import redis
import tomli_w
from redis.backoff import NoBackoff
from redis.retry import Retry
from support.procs import FleetProcs, wait_for, write_profile
from support.stores import make_store

from scheduler.embedded_redis import RedisServer, free_port
from scheduler.states import JobState

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
        return FleetProcs(url_form(form, password, port, socket_path), tempfile.mkdtemp(dir=tmp_path))

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


def run_one_job(server: RedisServer, workdir, command: list[str], prefix: list[str] = ()) -> str:
    """Run ``command`` as the one job of a real burst worker whose FLEET_REDIS_URL carries the
    password; the job's log.txt once it finished."""
    procs = FleetProcs(f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0", str(workdir))
    procs.env["FLEET_NAMESPACE"] = namespace = f"ns{free_port()}"
    manifest = workdir / "m.toml"
    manifest.write_text(tomli_w.dumps({"schema_version": 1, "jobs": [{"name": "snoop", "model": "m",
                                                                       "command": command}]}))
    try:
        assert procs.run("load", str(manifest)).returncode == 0
        worker = procs.worker("--burst", profile=write_profile(str(workdir / "h.toml"), "box", 2, 8), name="w",
                              prefix=prefix)
        assert worker.wait(60) == 0, procs.log_of(worker)
    finally:
        procs.stop_all()
    store = make_store(server.client(), namespace)
    assert store.jobs.get(store.jobs.resolve("snoop")).state is JobState.FINISHED
    (log,) = glob.glob(str(workdir / "runs" / "snoop-*" / "attempt-1" / "log.txt"))
    with open(log, errors="replace") as fh:
        return fh.read()


def test_a_job_cannot_read_the_redis_password_from_its_parent(locked_redis, tmp_path):
    """The job's parent is the work horse, a fork of the worker: it shares the environment block
    the worker started with, which /proc/PID/environ shows whatever os.environ says since."""
    snoop = 'cat /proc/$PPID/environ /proc/$PPID/cmdline; tr "\\0" "\\n" < /proc/$PPID/environ; echo; echo JOB-ENV; env'
    log = run_one_job(locked_redis, tmp_path, ["sh", "-c", snoop])
    parent, job_env = log.split("\nJOB-ENV\n")
    assert "scheduler.cli" in parent and "PYTHONPATH=" in parent  # the horse's cmdline and environ were read
    assert PASSWORD not in log and "FLEET_REDIS_URL=redis" not in log
    assert "FLEET_JOB_ID=" in job_env and not any(line.startswith("FLEET_REDIS_URL") for line in job_env.splitlines())


def _every_value(client: redis.Redis) -> list[bytes]:
    """Every key and value in the server, of whatever type, as bytes."""
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        out.append(key)
        if kind == "string":
            out.append(client.get(key))
        elif kind == "hash":
            out += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "zset":
            out += client.zrange(key, 0, -1)
        elif kind == "stream":
            out += [b for _, fields in client.xrange(key) for pair in fields.items() for b in pair]
    return out


def test_no_key_in_redis_holds_the_password_or_the_attempt_after_a_job(locked_redis, tmp_path):
    """The worker hands its prepared attempt (env, Redis URL) to the work horse in memory; rq's
    record of the job must keep the payload as enqueued, so neither reaches Redis."""
    import pickle
    import zlib

    locked_redis.client().flushall()
    run_one_job(locked_redis, tmp_path, ["true"])
    client = locked_redis.client()
    values = _every_value(client)
    assert values and not [v for v in values if PASSWORD.encode() in v]
    (payload,) = [client.hget(k, "data") for k in client.scan_iter(match="*job:*")
                  if client.type(k) == b"hash" and client.hexists(k, "data")]
    func_name, _, _, kwargs = pickle.loads(zlib.decompress(payload))  # rq's default serializer
    assert func_name == "worker.execute.run_claimed" and "attempt" not in kwargs


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             # only so that nobody can run this checkout's interpreter and write the test's tmp dir
             "--inh-caps=+dac_override", "--ambient-caps=+dac_override"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="starting a worker as another user needs root and setpriv")
def test_a_job_of_the_same_non_root_user_cannot_open_its_parents_memory(locked_redis, tmp_path):
    """Root reads any process's memory; a job of the worker's own (non-root) user must not."""
    probe = ("import os\n"
             "print('uid', os.getuid())\n"
             "for name in ('environ', 'mem'):\n"
             "    try:\n"
             "        os.close(os.open('/proc/%d/%s' % (os.getppid(), name), os.O_RDONLY))\n"
             "        print(name, 'readable')\n"
             "    except PermissionError:\n"
             "        print(name, 'denied')\n")
    log = run_one_job(locked_redis, tmp_path, [sys.executable, "-c", probe], prefix=AS_NOBODY)
    assert log.splitlines() == ["uid 65534", "environ denied", "mem denied"], log
