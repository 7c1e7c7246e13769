"""fleet prune: old attempts' outputs move to the archive, the job's result stays, nothing is half-done.

Attempts are made by the real claim and finish scripts on a real redis-server; their
output dirs are real dirs with an artifact manifest, so `fleet verify` can check
them after the move. "Nothing lost" here: every output dir exists exactly once,
where its attempt record says it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from support.procs import fleet_argv

from scheduler.artifacts import write_manifest
from scheduler.cli import main
from scheduler.embedded_redis import dump_namespace
from scheduler.manifest import parse_manifest
from scheduler.matching import ConstraintClass
from scheduler.prune import DAY_S, Pruner, select
from scheduler.resources import HostResources
from scheduler.runs_layout import output_dir
from scheduler.states import Outcome
from scheduler.store.claims import Claims, output_dir_of

HOST = HostResources("box", cores=8, ram_total_gib=64, ram_available_gib=64)
LATER = time.time() + 40 * DAY_S  # "now" for a prune run 40 days after the attempts ended


def make_attempts(store, runs: str, name: str, outcomes: list[Outcome]) -> str:
    """Run ``name`` through the real claim/finish scripts, one attempt per outcome, with outputs on disk."""
    manifest = parse_manifest(f'schema_version = 1\n[[jobs]]\nname = "{name}"\nmodel = "m"\n'
                              f"seed = {abs(hash(name)) % 10**6}\nmax_attempts = {len(outcomes) + 1}\nretry_delay_s = 0\n",
                              "m.toml")
    store.load(manifest, allow_orphaning=True)  # one job a load: each load orphans the jobs made before
    classes = [ConstraintClass.of(j, manifest.hosts) for j in manifest.jobs]
    claims = Claims(store.redis, store.keys)
    job_id = ""
    for outcome in outcomes:
        claim = claims.claim("w", HOST, classes)
        job_id = claim.job_id
        out = output_dir(runs, name, job_id, claim.attempt)
        os.makedirs(out)
        with open(os.path.join(out, "model.bin"), "wb") as fh:
            fh.write(os.urandom(64))
        store.redis.set(store.keys.artifacts(job_id, claim.attempt), json.dumps(write_manifest(out)))
        claims.complete(job_id, claim.attempt, "w", outcome, 0 if outcome is Outcome.FINISHED else 1, "",
                        out)
    return job_id


def attempts_of(store, job_id):
    return Claims(store.redis, store.keys).attempts(job_id)


@pytest.fixture
def runs(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    return str(path)


# -- which attempts go -----------------------------------------------------------

def _attempt(n, outcome="failed", ended_at=0.0, **extra):
    return {"attempt": n, "outcome": outcome, "ended_at": ended_at, "output_dir": f"/r/j-{n}", **extra}


def test_select_keeps_the_newest_n_and_the_result():
    attempts = [_attempt(1), _attempt(2), _attempt(3, "finished"), _attempt(4)]
    assert [a["attempt"] for a in select(attempts, keep=0, cutoff=1, include_last=False)[0]] == [1, 2, 4]
    chosen, kept = select(attempts, keep=0, cutoff=1, include_last=False)
    assert [(a["attempt"], "successful" in why) for a, why in kept] == [(3, True)]
    assert [a["attempt"] for a in select(attempts, keep=2, cutoff=1, include_last=False)[0]] == [1, 2]
    assert [a["attempt"] for a in select(attempts, keep=0, cutoff=1, include_last=True)[0]] == [1, 2, 3, 4]


def test_select_never_takes_young_running_or_archived_attempts():
    attempts = [_attempt(1, archived_to="/r/archive/x"), _attempt(2, ended_at=100.0),
                {"attempt": 3, "started_at": 0.0, "output_dir": "/r/j-3"}, _attempt(4)]
    assert [a["attempt"] for a in select(attempts, keep=0, cutoff=50.0, include_last=False)[0]] == [4]


# -- moving them, against a real redis-server ----------------------------------------

def test_prune_moves_old_attempts_and_keeps_the_result(real_store, runs):
    job_id = make_attempts(real_store, runs, "flaky", [Outcome.FAILED, Outcome.FAILED, Outcome.FINISHED])
    before = [a["output_dir"] for a in attempts_of(real_store, job_id)]

    pruner = Pruner(real_store, runs, now=LATER)
    plan = pruner.apply(pruner.plan(keep=0, older_than_days=30, include_last=False))

    assert [m.attempt for m in plan.moves] == [1, 2] and not plan.failed
    assert [(k.attempt, "successful" in k.reason) for k in plan.kept] == [(3, True)]
    after = attempts_of(real_store, job_id)
    for a, old in zip(after[:2], before[:2]):
        assert not os.path.exists(old)
        assert a["archived_to"].startswith(os.path.join(os.path.realpath(runs), "archive", ""))
        assert os.path.isfile(os.path.join(a["archived_to"], "model.bin"))
    assert "archived_to" not in after[2] and os.path.isdir(before[2])
    assert oct(os.stat(os.path.dirname(after[0]["archived_to"])).st_mode & 0o777) == "0o700"


def test_archived_outputs_still_verify_and_show_in_fleet_job(real_store, runs, redis_server, monkeypatch, capsys):
    job_id = make_attempts(real_store, runs, "done", [Outcome.FINISHED])
    pruner = Pruner(real_store, runs, now=LATER)
    plan = pruner.apply(pruner.plan(keep=0, older_than_days=30, include_last=True))
    assert [m.attempt for m in plan.moves] == [1]
    archived = attempts_of(real_store, job_id)[0]["archived_to"]
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)

    assert main(["verify", "done", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output_dir"] == archived
    assert main(["job", "done"]) == 0
    assert f"{archived} (archived by `fleet prune`)" in capsys.readouterr().out
    with open(os.path.join(archived, "model.bin"), "ab") as fh:
        fh.write(b"tampered")
    assert main(["verify", "done"]) == 2
    assert "changed: model.bin" in capsys.readouterr().out


def test_keep_and_age_limit_what_moves(real_store, runs):
    job_id = make_attempts(real_store, runs, "j", [Outcome.FAILED, Outcome.FAILED, Outcome.FAILED])
    young = Pruner(real_store, runs, now=time.time() + 29 * DAY_S)
    assert young.plan(keep=0, older_than_days=30, include_last=False).moves == []
    old = Pruner(real_store, runs, now=LATER)
    assert [m.attempt for m in old.plan(keep=2, older_than_days=30, include_last=False).moves] == [1]
    assert all("archived_to" not in a for a in attempts_of(real_store, job_id))  # plan() writes nothing


def test_dry_run_changes_no_key_and_no_file(real_store, runs, redis_server, monkeypatch, capsys):
    make_attempts(real_store, runs, "j", [Outcome.FAILED, Outcome.FINISHED])
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)
    keys_before, files_before = dump_namespace(real_store.redis), sorted(os.walk(runs))
    assert main(["prune", "--keep", "0", "--older-than", "0", "--runs-dir", runs, "--dry-run"]) == 0
    assert "would move 1 attempt output dir(s)" in capsys.readouterr().out
    assert dump_namespace(real_store.redis) == keys_before and sorted(os.walk(runs)) == files_before


def test_outputs_elsewhere_or_outside_the_runs_dir_are_never_touched(real_store, runs, tmp_path):
    job_id = make_attempts(real_store, runs, "j", [Outcome.FAILED, Outcome.FAILED, Outcome.FAILED])
    key = real_store.keys.attempts(job_id)
    outside = tmp_path / "precious"
    outside.mkdir()
    for index, path in ((0, str(outside)), (1, os.path.join(runs, "j-0123456789abcdef", "attempt-9"))):
        record = json.loads(real_store.redis.lindex(key, index))  # a foreign or stale record in Redis
        real_store.redis.lset(key, index, json.dumps({**record, "output_dir": path, "host": "other-box"}))

    pruner = Pruner(real_store, runs, now=LATER)
    plan = pruner.apply(pruner.plan(keep=0, older_than_days=30, include_last=False))

    assert [m.attempt for m in plan.moves] == [3]
    reasons = {k.attempt: k.reason for k in plan.kept}
    assert "not an attempt dir under --runs-dir" in reasons[1] and "not on this host" in reasons[2]
    assert outside.is_dir()


def test_an_interrupted_prune_is_finished_by_the_next(real_store, runs):
    job_id = make_attempts(real_store, runs, "j", [Outcome.FAILED, Outcome.FINISHED])
    source = attempts_of(real_store, job_id)[0]["output_dir"]
    target = os.path.join(os.path.realpath(runs), "archive", "20260101T000000Z", os.path.relpath(source, runs))
    claims = Claims(real_store.redis, real_store.keys)
    # What a prune SIGKILLed between its Redis write and its rename leaves behind:
    assert claims.scripts.archive(keys=[real_store.keys.attempts(job_id)],
                                  args=["mark", 1, source, target, time.time()]) == b"ok"
    assert output_dir_of(attempts_of(real_store, job_id)[0]) == target and os.path.isdir(source)

    pruner = Pruner(real_store, runs, now=time.time())
    plan = pruner.apply(pruner.plan(keep=5, older_than_days=30, include_last=False))

    assert [(m.attempt, m.resumed) for m in plan.moves] == [(1, True)]
    assert os.path.isdir(target) and not os.path.exists(source)


def test_two_prunes_racing_move_each_dir_exactly_once(real_store, runs, redis_server):
    ids = [make_attempts(real_store, runs, f"j{i}", [Outcome.FAILED, Outcome.FAILED, Outcome.FINISHED])
           for i in range(10)]
    env = dict(os.environ, FLEET_REDIS_URL=redis_server.url)
    argv = fleet_argv("prune", "--keep", "0", "--older-than", "0", "--runs-dir", runs, "--json")
    racers = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=60)[0]) for p in racers]
    assert all(set(r) == {"dry_run", "archive_dir", "archived", "kept", "failed"} for r in reports)
    assert set(reports[0]["archived"][0] if reports[0]["archived"] else reports[1]["archived"][0]) == {
        "job_id", "name", "attempt", "source", "target", "resumed"}  # the documented shape

    assert sum(len(r["archived"]) for r in reports) == 20 and not any(r["failed"] for r in reports)
    for job_id in ids:
        for a in attempts_of(real_store, job_id):
            where = output_dir_of(a)
            assert os.path.isfile(os.path.join(where, "model.bin")), a
            assert (a["attempt"] == 3) != bool(a.get("archived_to"))
            assert not (a.get("archived_to") and os.path.exists(a["output_dir"]))


def test_a_runs_dir_that_is_not_there_is_a_one_line_usage_error(real_store, redis_server, monkeypatch, capsys):
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)
    assert main(["prune", "--runs-dir", "/nonexistent/runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--runs-dir /nonexistent/runs: no such directory" in err


def test_a_move_that_fails_leaves_record_and_outputs_as_they_were(real_store, runs, redis_server, monkeypatch,
                                                                   capsys):
    job_id = make_attempts(real_store, runs, "j", [Outcome.FAILED, Outcome.FINISHED])
    with open(os.path.join(runs, "archive"), "w") as fh:  # the archive cannot be created here
        fh.write("not a dir")
    records_before = attempts_of(real_store, job_id)
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)

    assert main(["prune", "--keep", "0", "--older-than", "0", "--runs-dir", runs]) == 1
    assert "FAILED j attempt 1: cannot move" in capsys.readouterr().out
    assert attempts_of(real_store, job_id) == records_before
    assert os.path.isfile(os.path.join(records_before[0]["output_dir"], "model.bin"))


def test_the_screen_lists_twenty_kept_attempts_and_json_lists_all(real_store, runs, redis_server, monkeypatch,
                                                                  capsys):
    job_id = make_attempts(real_store, runs, "many", [Outcome.FAILED] * 26)
    key = real_store.keys.attempts(job_id)
    for index in range(25):  # attempts another host ran: their dirs are not here
        record = json.loads(real_store.redis.lindex(key, index))
        real_store.redis.lset(key, index, json.dumps({**record, "output_dir": f"{record['output_dir']}00",
                                                      "host": "other-box"}))
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)
    args = ["prune", "--keep", "0", "--older-than", "0", "--runs-dir", runs, "--dry-run"]
    assert main(args) == 0
    screen = capsys.readouterr().out
    assert screen.count("not on this host") == 20 and "... and 5 more kept (--json lists them all)" in screen
    assert main([*args, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["kept"]) == 25
