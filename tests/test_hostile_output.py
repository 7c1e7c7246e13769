"""Human output never carries a raw control character, whatever a manifest, a job or a worker wrote.

A model named ``evil\\x1b[31mRED``, a mode with ``\\r\\n`` in it, a host description with an
OSC title sequence, a job's failure reason, log line or metric name: every human command
prints them escaped (``\\x1b``), so none recolours or retitles the terminal or forges a row.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from support.stores import make_store

from scheduler.cli import main
from scheduler.resources import GpuInfo, HostResources
from scheduler.states import Outcome
from scheduler.store.claims import Claims
from scheduler.table import printable

EVIL = "evil\x1b[31mRED\r\nFORGED ROW\x1b]0;owned\x07\u202eesrever\x9b2J"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MANIFEST = """schema_version = 1
[defaults]
dataset = "d\\u001b[5m"
[hosts.box]
description = "\\u001b]0;title\\u0007"
[[jobs]]
name = "victim"
model = "evil\\u001b[31mRED"
mode = "a\\r\\nb"
hyper = { "k\\u001b" = "v\\u009b" }
command = ["true"]
[[jobs]]
name = "broken"
model = "m"
max_attempts = 1
command = ["true"]
[[jobs]]
name = "never"
model = "m\\u001bX"
require_cuda = true
min_vram_gib = 500
command = ["true"]
"""


@pytest.fixture
def hostile(redis_server, real_redis, monkeypatch, capsys, tmp_path, tally):
    """A store whose every free-text field holds terminal controls, and a `fleet` to run on it."""
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)
    monkeypatch.delenv("FLEET_NAMESPACE", raising=False)
    path = tmp_path / "evil.toml"
    path.write_text(MANIFEST)
    assert main(["load", str(path)]) == 0
    store = make_store(real_redis)
    keys = store.keys
    host = HostResources("box", cores=4, ram_total_gib=8, ram_available_gib=8,
                         gpus=(GpuInfo(0, EVIL, 24, 24, uuid="GPU-x"),))
    real_redis.hset(keys.worker("w"), mapping={"name": "w", "host": "box", "state": "paused", "job_id": "",
                                               "note": EVIL, "heartbeat": repr(time.time()), "pid": 1,
                                               "resources": host.to_json(), "simulated": "1", "lease_s": 30})
    real_redis.zadd(keys.workers, {"w": time.time()})
    from scheduler.matching import ConstraintClass
    from scheduler.manifest import load_manifest

    manifest = load_manifest(str(path))
    claims = Claims(real_redis, keys)
    claim = claims.claim("w", host, [ConstraintClass.of(j, manifest.hosts) for j in manifest.jobs])
    job_id = claim.job_id
    real_redis.xadd(keys.log(job_id, 1), {"line": EVIL.encode()})
    real_redis.xadd(keys.metrics(job_id, 1), {"line": json.dumps({EVIL: 1.0, "step": 1}).encode()})
    claims.complete(job_id, 1, "w", Outcome.FINISHED, 0, "", "/runs/x", {EVIL: 0.5})
    broken = claims.claim("w", host, [ConstraintClass.of(j, manifest.hosts) for j in manifest.jobs])
    claims.complete(broken.job_id, 1, "w", Outcome.FAILED, 1, EVIL)
    capsys.readouterr()
    profile = tmp_path / "h.toml"
    profile.write_text('hostname = "box"\ncuda = true\ncores = 2\nram_gib = 4\n[[gpus]]\n'
                       'name = "G\\u001b[2J"\nvram_gib = 8\n')

    def run(*args: str) -> str:
        main(list(args))
        out, err = capsys.readouterr()
        tally.hostile()
        return out + err
    run.profile = str(profile)
    run.manifest = str(path)
    return run


COMMANDS = [("status",), ("jobs",), ("job", "victim"), ("job", "broken"), ("explain", "broken"), ("workers",),
            ("logs", "victim"), ("metrics", "victim"), ("compare", "--all"), ("job", "nope\x1b[2J"),
            ("jobs", "--model", "evil\x1b[31mRED")]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a).encode("unicode_escape").decode())
def test_every_human_command_escapes_what_others_wrote(hostile, args):
    text = hostile(*args)
    assert not RAW_CONTROL.search(text), text
    assert "\\x1b" in text or "\\u001b" in text, text  # the text is shown, escaped (as repr or JSON does), not dropped


def test_probe_and_an_offline_load_escape_too(hostile):
    for args in (("probe", "--host-profile", hostile.profile, "--offline"),
                 ("probe", "--host-profile", hostile.profile, "--manifest", hostile.manifest),
                 ("load", "--offline", hostile.manifest)):
        text = hostile(*args)
        assert not RAW_CONTROL.search(text), text


def test_logs_raw_prints_the_jobs_bytes_as_they_are(hostile):
    assert EVIL in hostile("logs", "victim", "--raw")


def test_printable_escapes_as_repr_does_and_keeps_what_it_is_told():
    assert printable("a\x1b[1mb\u202e") == "a\\x1b[1mb\\u202e"
    assert printable("one\ttwo\nthree", keep="\t\n") == "one\ttwo\nthree"
    assert printable("plain, ünïcode ✓") == "plain, ünïcode ✓"


def test_worker_and_host_names_with_controls_are_refused(hostile, capsys):
    """They become Redis keys and table cells; refused before anything is written."""
    for args in (["worker", "--name", "w\x1b[2J", "--host-profile", hostile.profile, "--burst"],
                 ["probe", "--offline", "--host-name", "box\r\nx"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "must be 1-" in err and not RAW_CONTROL.search(err), err


def test_log_lines_escape_what_they_quote(capsys):
    """A worker logs job names, reasons and keys: the journal gets them escaped, one line each."""
    import logging

    from scheduler.logging_setup import setup_logging

    setup_logging()
    logging.getLogger("fleet.worker").error("job %s failed: %s", "victim", EVIL)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not RAW_CONTROL.search(err.rstrip("\n")) and "\\x1b[31mRED" in err
