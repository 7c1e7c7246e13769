"""The CLI's contract: exit codes, one-line errors without secrets, JSON shapes; the example manifest."""

from __future__ import annotations

import json
import os

import pytest

from scheduler.cli import main
from scheduler.embedded_redis import dump_namespace, free_port
from scheduler.manifest import load_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "manifests", "example.toml")


@pytest.fixture
def cli(redis_server, real_redis, monkeypatch, capsys):
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)
    monkeypatch.delenv("FLEET_NAMESPACE", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_example_manifest_is_seed_shaped_and_reloads_byte_for_byte(cli, real_redis):
    manifest = load_manifest(EXAMPLE)
    assert len(manifest.jobs) == 54 and {j.model for j in manifest.jobs} >= {"cnn", "transformer", "knn"}
    assert {j.identity["split_recipe"] for j in manifest.jobs} == {"host", "time", "random"}
    assert len({j.mode for j in manifest.jobs}) == 2 and manifest.lab_fields == ("split_recipe", "train_hosts")
    assert cli("load", EXAMPLE)[0] == 0
    first = dump_namespace(real_redis)
    code, out, _ = cli("load", EXAMPLE)
    assert code == 0 and "0 added" in out and "54 unchanged" in out and "nothing written" in out
    assert dump_namespace(real_redis) == first


def test_status_and_jobs_json_shapes(cli):
    cli("load", EXAMPLE)
    code, out, _ = cli("status", "--json")
    data = json.loads(out)
    assert code == 0 and data["jobs"]["pending"] == 54
    assert set(data["jobs"]) >= {"pending", "running", "finished", "failed", "canceled", "blocked", "orphaned"}
    assert data["workers"] == []
    code, out, _ = cli("jobs", "--json", "--limit", "1000")
    rows = json.loads(out)
    assert len(rows) == 54
    assert all(set(r) == {"job_id", "name", "model", "mode", "state", "priority", "host", "worker", "attempts",
                          "in_manifest", "state_at", "reason", "started_at", "ended_at", "elapsed_s", "progress", "gpu"}
               for r in rows)
    # nobody has run anything and no worker is registered: every pending job says so
    assert {(r["state"], r["reason"], r["started_at"], r["elapsed_s"]) for r in rows} == \
        {("pending", "No live worker", None, None)}


def test_rejected_manifest_exits_2_and_names_the_field(cli, tmp_path, real_redis):
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\n[[jobs]]\nname = "x"\nmodel = "m"\nmin_vram_gb = 3\n')
    code, _, err = cli("load", str(bad))
    assert code == 2 and "min_vram_gb" in err and "did you mean 'min_vram_gib'" in err
    assert dump_namespace(real_redis) == {}


def test_a_manifest_nested_too_deep_exits_2_with_one_line_not_a_traceback(cli, tmp_path, real_redis):
    deep = tmp_path / "deep.toml"
    deep.write_text('schema_version = 1\n[[jobs]]\nname = "x"\nmodel = "m"\nhyper = ' + "{ a = " * 1000 + "1"
                    + " }" * 1000 + "\n")
    code, _, err = cli("load", str(deep))
    assert code == 2 and "deep.toml: invalid TOML: tables or arrays nested too deeply" in err
    assert len(err.strip().splitlines()) == 1 and dump_namespace(real_redis) == {}


def test_unreachable_redis_exits_1_without_leaking_the_password(capsys, monkeypatch):
    monkeypatch.setenv("FLEET_REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    code = main(["status"])
    _, err = capsys.readouterr()
    assert code == 1 and "hunter2" not in err and "redis://:***@127.0.0.1" in err
    assert len(err.strip().splitlines()) == 1 and "start redis-server or pass --redis-url" in err


@pytest.mark.parametrize("url, says", [
    ("redis://:hunter2@127.0.0.1:99999/0", "port that is not a number from 1 to 65535"),
    ("redis://:hunter2@127.0.0.1:63x9/0", "port that is not a number from 1 to 65535"),
    ("redis://:hunter2@127.0.0.1:0/0", "port that is not a number from 1 to 65535"),
    ("redis://:hunter2@[::1/0", "malformed IPv6 address"),
    ("redis://127.0.0.1/0?password=hunter2&socket_timeout=soon", "Invalid value for 'socket_timeout'"),
    ("redis://127.0.0.1/?db=-1&password=hunter2", "negative database number"),
    ("redis://127.0.0.1/0?password=hunter2&colour=blue", "'colour', which is no Redis connection option"),
    ("unix:///run/r.sock?password=hunter2&socket_keepalive=yes", "'socket_keepalive', which does not apply to unix://"),
    ("rediss://127.0.0.1/0?password=hunter2&ssl_cert_reqs=maybe", "Invalid SSL Certificate Requirements Flag"),
    ("redis://:hunter/2@127.0.0.1/0", "'/' as %2F"),
    ("redis+sentinel://:hunter2@127.0.0.1/fleet", "sentinel that is not host:port"),
    ("redis+sentinel://:hunter2@127.0.0.1:26379", "names no service"),
    ("redis+sentinel://:hunter2@127.0.0.1:26379/fleet/zero", "database that is not a number"),
    ("redis+sentinel://127.0.0.1:26379/fleet?password=hunter2", "takes none"),
])
def test_a_bad_redis_url_is_one_line_naming_the_setting_never_the_password(url, says, monkeypatch, capsys):
    monkeypatch.setenv("FLEET_REDIS_URL", url)
    code = main(["status"])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "FLEET_REDIS_URL" in err, err
    assert "hunter" not in err and len(err.strip().splitlines()) == 1, err


def test_the_url_path_must_be_a_database_number(cli, redis_server, monkeypatch):
    base = f"redis://127.0.0.1:{redis_server.port}"
    for path in ("/abc", "/1/2", "/-1"):
        monkeypatch.setenv("FLEET_REDIS_URL", base + path)
        code, _, err = cli("status")
        assert code == 2 and "not a database number" in err and len(err.strip().splitlines()) == 1, (path, err)
    for path in ("", "/", "/3"):  # no path and "/" are db 0
        monkeypatch.setenv("FLEET_REDIS_URL", base + path)
        assert cli("load", EXAMPLE)[0] == 0, path
    assert {name for name in redis_server.client().info("keyspace")} == {"db0", "db3"}


# Port 1: should the flag ever be let through, nothing answers there (not a developer's own Redis).
@pytest.mark.parametrize("url", ["redis://:hunter2@127.0.0.1:1/0", "redis://alice:hunter2@127.0.0.1:1/0",
                                 "redis://hunter2@127.0.0.1:1/0", "redis://127.0.0.1:1/0?password=hunter2",
                                 "unix:///nonexistent/redis.sock?password=hunter2"])
@pytest.mark.parametrize("command", [["status"], ["load", EXAMPLE, "--offline"], ["probe", "--offline"],
                                     ["demo", "--timeout-s", "1"]])
def test_a_password_on_the_command_line_is_refused(cli, url, command):
    code, out, err = cli(*command, "--redis-url", url)
    assert code == 2 and "visible to every user" in err and "FLEET_REDIS_URL" in err, err
    assert "/etc/fleet/fleet.env (mode 0600)" in err and "hunter2" not in out + err
    assert len(err.strip().splitlines()) == 1


def test_a_redis_url_without_credentials_is_fine_on_the_command_line(cli, redis_server, monkeypatch):
    monkeypatch.setenv("FLEET_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # would fail: the flag wins
    code, out, _ = cli("status", "--redis-url", redis_server.url + "?socket_timeout=5")
    assert code == 0 and "socket_timeout=5" in out.splitlines()[0]


@pytest.mark.parametrize("argv", [
    ["status", "--namespace", ""],
    ["status", "--redis-url", ""],
    ["load", EXAMPLE, "--offline", "--namespace", ""],
    ["probe", "--offline", "--redis-url", ""],
    ["demo", "--redis-url", "", "--timeout-s", "1"],  # the limit only matters if the flag is let through
])
def test_an_empty_flag_is_an_error(cli, argv):
    code, _, err = cli(*argv)
    assert code == 2 and "is given but empty" in err and argv[argv.index("") - 1] in err, err
    assert len(err.strip().splitlines()) == 1


def test_an_empty_environment_variable_counts_as_unset(cli, monkeypatch):
    monkeypatch.setenv("FLEET_NAMESPACE", "")  # as an environment file's `FLEET_NAMESPACE=` line
    code, out, _ = cli("status")
    assert code == 0 and out.startswith("namespace fleet @ ")


def test_not_found_exits_3_and_ambiguous_prefix_lists_candidates(cli, real_redis):
    cli("load", EXAMPLE)
    code, _, err = cli("explain", "no-such-job")
    assert code == 3 and "fleet jobs" in err
    ids = [r["job_id"] for r in json.loads(cli("jobs", "--json", "--limit", "1000")[1])]
    code, out, _ = cli("job", ids[0][:10])
    assert code == 0 and ids[0] in out
    # Two ids sharing a prefix (planted in the id index) make that prefix ambiguous.
    real_redis.zadd("{fleet}:ids", {"abcd000000000000": 0, "abcd111111111111": 0})
    code, _, err = cli("job", "abcd")
    assert code == 2 and "ambiguous" in err and "abcd000000000000" in err and "abcd111111111111" in err


def test_a_job_id_prefix_too_short_to_look_up_says_the_minimum(cli, real_redis):
    cli("load", EXAMPLE)
    job_id = json.loads(cli("jobs", "--json", "--limit", "1")[1])[0]["job_id"]
    code, _, err = cli("job", job_id[:3])
    assert code == 3 and "a job_id prefix needs at least 4 hex digits" in err and len(err.strip().splitlines()) == 1
    assert cli("job", job_id[:4])[0] == 0


def test_a_job_reference_that_is_not_utf8_is_a_usage_error(cli):
    ref = b"caf\xe9".decode("utf-8", "surrogateescape")  # what argv holds for `fleet job $'caf\xe9'`
    code, _, err = cli("job", ref)
    assert code == 2 and "job reference 'caf\\udce9' is not valid UTF-8" in err, err
    assert len(err.strip().splitlines()) == 1


def test_dry_run_writes_nothing_and_offline_needs_no_redis(cli, real_redis, capsys):
    code, out, _ = cli("load", EXAMPLE, "--dry-run")
    assert code == 0 and "54 added" in out and dump_namespace(real_redis) == {}
    code = main(["load", EXAMPLE, "--offline", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"])
    assert code == 0 and "valid, 54 jobs" in capsys.readouterr().out


def test_bad_arguments_exit_2(cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["jobs", "--limit", "zero"])
    assert exit_info.value.code == 2
    assert "not a whole number" in capsys.readouterr().err
    code = main(["status", "--namespace", "bad name!"])
    assert code == 2 and "namespace" in capsys.readouterr().err


def test_every_command_runs_its_own_module_only():
    """Each subcommand resolves to a function, and a quick command does not import the
    worker's and demo's stacks (rq, the embedded server): `fleet status` stays fast."""
    import subprocess
    import sys

    from scheduler.cli import _COMMANDS, _dispatch, build_parser

    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)
    assert names == set(_COMMANDS)
    for name in names:
        assert callable(_dispatch(parser.parse_args([name] + _required_args(name))))
    probe = ("import sys; from scheduler.cli import _dispatch, build_parser; "
             "_dispatch(build_parser().parse_args(['status'])); "
             "print(sorted(m for m in ('rq', 'scheduler.demo.run', 'worker.rq_worker') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def _required_args(command: str) -> list[str]:
    return {"load": ["m.toml"], "explain": ["x"], "job": ["x"], "logs": ["x"], "verify": ["x"],
            "cancel": ["x"], "retry": ["x"], "hold": ["x"], "release": ["x"], "drain": ["h"],
            "metrics": ["x"], "fork": ["x"]}.get(command, [])


def test_a_load_that_would_orphan_every_job_exits_2_unless_allowed(cli, tmp_path, real_redis):
    """Before, an empty [[jobs]] list (or a truncated file) orphaned the whole fleet and exited 0."""
    cli("load", EXAMPLE)
    before = dump_namespace(real_redis)
    empty = tmp_path / "empty.toml"
    empty.write_text("schema_version = 1\n")
    code, out, err = cli("load", str(empty))
    assert code == 2 and out == "" and dump_namespace(real_redis) == before
    assert f"{empty}: this load would orphan 54 of the 54 jobs" in err and "--allow-orphaning" in err
    code, out, err = cli("load", str(empty), "--dry-run", "--json")
    assert code == 2 and len(json.loads(out)["orphaned"]) == 54 and "the real load would be refused" in err
    assert dump_namespace(real_redis) == before
    code, out, _ = cli("load", str(empty), "--allow-orphaning")
    assert code == 0 and "54 orphaned" in out
    assert json.loads(cli("status", "--json")[1])["jobs"]["orphaned"] == 54


def test_a_value_fleet_did_not_write_is_one_line_naming_its_key_not_a_traceback(cli, real_redis):
    """`fleet job`, `compare`, `verify` and `explain` read values a job's end or a claim wrote; one
    someone else wrote there is a StoreError at the CLI edge, naming the key and what to do."""
    import time

    from scheduler.keys import Keys
    from scheduler.resources import HostResources
    from scheduler.store.workers import queue_publish

    cli("load", EXAMPLE)
    keys = Keys("fleet")
    job_id = real_redis.hget(keys.names, "gbt-realistic-host")
    assert job_id, "the example's first job"
    job_id = job_id.decode()
    real_redis.set(keys.result(job_id), b"\xff not json")
    for command in (["job", "gbt-realistic-host"], ["compare", "--all"]):
        code, out, err = cli(*command)
        assert code != 0 and err.count("\n") == 1 and keys.result(job_id) in err and "Traceback" not in err, command
    real_redis.delete(keys.result(job_id))
    host = HostResources("box", 8, 32, 32)
    pipe = real_redis.pipeline()
    queue_publish(pipe, keys, "w", {"name": "w", "host": "box", "state": "idle", "resources": host.to_json(),
                                    "lease_s": 30}, time.time())
    pipe.hset(keys.ledger("box"), "ram", "lots")
    pipe.execute()
    code, out, err = cli("explain", "gbt-realistic-host")
    assert code != 0 and err.count("\n") == 1 and f"ledger {keys.ledger('box')} field ram is not a number" in err
