"""CLI commands against a real Redis with real workers: explain's reasons, JSON shapes, filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tomli_w
from support.procs import FleetProcs, fleet_argv, wait_for, write_profile

from scheduler.embedded_redis import RedisServer
from scheduler.keys import Keys


# A failing job that says what trackers would name its run, and leaves a last line for rq to show.
GBT = ("import os; print('tracker', *(os.environ.get(k) for k in ('WANDB_NAME', 'WANDB_RUN_GROUP', 'WANDB_DIR', "
       "'MLFLOW_RUN_NAME'))); print('loss went nan at step 7'); raise SystemExit(4)")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """One small live fleet shared by this module's read-mostly tests (starting workers is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("cli-fleet")
    server = RedisServer()
    real_redis = server.client()
    procs = FleetProcs(server.url, str(tmp_path))
    manifest = {
        "schema_version": 1,
        "defaults": {"command": [sys.executable, "-c", "print('ok')"]},
        "hosts": {"cpu-1": {"deny_jobs": ["cnn"]}, "thinkpad": {}, "gpu-24": {}},
        "jobs": [
            {"name": "big-cnn", "model": "cnn", "require_cuda": True, "min_vram_gib": 40, "denied_hosts": ["thinkpad"]},
            {"name": "knn-1", "model": "knn"},
            {"name": "knn-2", "model": "knn", "seed": 2},
            {"name": "gbt-1", "model": "gbt", "max_attempts": 1, "command": [sys.executable, "-c", GBT]},
            {"name": "gpu-mlp", "model": "mlp", "require_cuda": True, "min_vram_gib": 8},
        ],
    }
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps(manifest))
    assert procs.run("load", str(path)).returncode == 0
    profiles = {"cpu-1": write_profile(str(tmp_path / "cpu.toml"), "cpu-1", 8, 32),
                "thinkpad": write_profile(str(tmp_path / "tp.toml"), "thinkpad", 4, 16),
                "gpu-24": write_profile(str(tmp_path / "g.toml"), "gpu-24", 8, 32, [23.5])}
    for name, profile in profiles.items():
        procs.worker(profile=profile, name=name, lease_s=30)
    from support.stores import make_store

    store = make_store(real_redis)
    wait_for(lambda: store.jobs.counts()["finished"] == 3 and store.jobs.counts()["failed"] == 1,
             timeout_s=30, what="the runnable jobs to end")
    yield procs
    procs.stop_all()
    server.stop()


def test_explain_names_the_first_failing_constraint_per_worker(fleet):
    done = fleet.run("explain", "big-cnn")
    assert done.returncode == 0
    out = done.stdout
    assert "gpu-24@gpu-24: min_vram_gib 40 > free 23.5" in out
    assert "thinkpad@thinkpad: denied by job.denied_hosts" in out
    assert "cpu-1@cpu-1: host deny_jobs matches 'cnn'" in out
    assert "No live worker can ever run it" in out
    data = json.loads(fleet.run("explain", "big-cnn", "--json").stdout)
    assert data["state"] == "pending" and data["runnable_by"] == [] and len(data["workers"]) == 3


def test_explain_of_failed_job_and_status_flags(fleet):
    out = fleet.run("explain", "gbt-1").stdout
    assert "exit code 4" in out and "fleet retry gbt-1" in out
    status = json.loads(fleet.run("status", "--json").stdout)
    assert [u["jobs"] for u in status["unrunnable"]] == [["big-cnn"]]
    assert status["recent_failures"][0]["name"] == "gbt-1" and status["recent_failures"][0]["reason"] == "exit code 4"
    assert {w["name"] for w in status["workers"]} == {"cpu-1", "thinkpad", "gpu-24"}
    for w in status["workers"]:
        assert {"name", "host", "state", "simulated", "cuda", "gpus", "ram_gib", "cores", "job_id",
                "heartbeat_age_s"} <= set(w)
        assert w["simulated"] is True and w["state"] == "idle"
    gpu = next(w for w in status["workers"] if w["name"] == "gpu-24")
    (card,) = gpu["gpus"]  # the documented keys (more may come), and nothing held on an idle worker
    assert gpu["cuda"] and {k: card[k] for k in ("index", "name", "vram_total_gib", "vram_free_gib")} == \
        {"index": 0, "name": "GPU0-23.5G", "vram_total_gib": 23.5, "vram_free_gib": 23.5}
    assert card["held_by"] == [] and card["reserved_gib"] == 0
    human = fleet.run("status").stdout
    assert "no live worker can run: big-cnn" in human and "recent failures" in human


def test_jobs_filters_and_job_detail(fleet):
    rows = json.loads(fleet.run("jobs", "--json", "--model", "knn").stdout)
    assert sorted(r["name"] for r in rows) == ["knn-1", "knn-2"]
    assert all(r["state"] == "finished" and r["attempts"] == 1 for r in rows)
    one = json.loads(fleet.run("jobs", "--json", "--model", "knn", "--limit", "1", "--offset", "1").stdout)
    assert len(one) == 1 and one[0]["name"] in {"knn-1", "knn-2"} and one[0]["name"] != rows[0]["name"]
    assert json.loads(fleet.run("jobs", "--json", "--state", "pending").stdout)[0]["name"] == "big-cnn"
    detail = json.loads(fleet.run("job", "gbt-1", "--json").stdout)
    assert detail["state"] == "failed" and detail["identity"]["model"] == "gbt"
    assert [(a["attempt"], a["outcome"], a["exit_code"]) for a in detail["attempts_detail"]] == [(1, "failed", 4)]
    assert detail["output_dir"].endswith(f"gbt-1-{detail['job_id']}/attempt-1")
    assert "output dir (on " in fleet.run("job", "gbt-1").stdout
    workers = json.loads(fleet.run("workers", "--json").stdout)
    assert len(workers) == 3


def test_job_detail_names_the_gpu_each_attempt_had(fleet):
    def attempts_table(name: str) -> list[list[str]]:
        lines = fleet.run("job", name).stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("#  "))
        return [line.split() for line in lines[start:start + 2]]

    header, first = attempts_table("gpu-mlp")
    assert header[:4] == ["#", "WORKER", "HOST", "GPU"] and first[1:4] == ["gpu-24", "gpu-24", "gpu0"]
    assert "GPU" not in attempts_table("knn-1")[0]  # no such column for CPU jobs


def test_jobs_say_why_each_waits_and_filter_by_states_and_globs(fleet):
    rows = {r["name"]: r for r in json.loads(fleet.run("jobs", "--json").stdout)}
    assert rows["big-cnn"]["reason"] == "No host fits: min_vram_gib 40"
    assert rows["gbt-1"]["reason"] == "exit code 4" and rows["knn-1"]["reason"] is None
    knn = rows["knn-1"]
    assert knn["started_at"] < knn["ended_at"] and knn["elapsed_s"] == round(knn["ended_at"] - knn["started_at"], 1)
    assert (rows["big-cnn"]["started_at"], rows["big-cnn"]["elapsed_s"], rows["big-cnn"]["progress"]) == (None,) * 3
    both = json.loads(fleet.run("jobs", "--json", "--state", "failed,pending").stdout)
    assert sorted(r["name"] for r in both) == ["big-cnn", "gbt-1"]
    by_glob = json.loads(fleet.run("jobs", "--json", "--name", "*-1", "--model", "[kg]*").stdout)
    assert sorted(r["name"] for r in by_glob) == ["gbt-1", "knn-1"]
    mine = json.loads(fleet.run("jobs", "--json", "--worker", knn["worker"], "--host", knn["host"][:3] + "*").stdout)
    assert "knn-1" in {r["name"] for r in mine} and {r["worker"] for r in mine} == {knn["worker"]}
    assert json.loads(fleet.run("jobs", "--json", "--state", "orphaned").stdout) == []
    typo = fleet.run("jobs", "--state", "pending,helt")
    assert typo.returncode == 2 and "--state 'helt': no such state (did you mean 'held'?)" in typo.stderr
    table = fleet.run("jobs", "--name", "big-cnn").stdout.splitlines()
    assert table[0].split()[-3:] == ["ELAPSED", "PROGRESS", "REASON"] and table[1].endswith("min_vram_gib 40")


def on_terminal(fleet, *args: str, columns: int = 120, expect_rc: int = 0) -> str:
    """What a command prints on a terminal ``columns`` wide (a pty, as an operator's shell gives it)."""
    master, slave = os.openpty()
    try:
        done = subprocess.run(fleet_argv(*args), env={**fleet.env, "COLUMNS": str(columns)}, cwd=fleet.workdir,
                              stdin=slave, stdout=slave, stderr=slave, timeout=60)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    output = b"".join(chunks).decode().replace("\r\n", "\n")
    assert done.returncode == expect_rc, output
    return output


def test_tables_fit_a_terminal_and_are_never_cut_when_piped(fleet):
    lines = on_terminal(fleet, "jobs", columns=70).splitlines()
    assert lines and all(len(line) <= 70 for line in lines) and any(line.endswith("…") for line in lines)
    piped = subprocess.run(fleet_argv("jobs"), env={**fleet.env, "COLUMNS": "70"}, cwd=fleet.workdir,
                           capture_output=True, text=True, timeout=60)
    assert "…" not in piped.stdout and max(len(line) for line in piped.stdout.splitlines()) > 70
    assert "No host fits: min_vram_gib 40" in piped.stdout


def test_an_action_on_many_filtered_jobs_asks_for_yes_on_a_terminal(fleet, tmp_path):
    path = tmp_path / "bulk.toml"
    path.write_text(tomli_w.dumps({"schema_version": 1, "jobs": [
        {"name": f"sweep-{i}", "model": "transformer", "seed": i, "allowed_hosts": ["nowhere"]} for i in range(25)]}))
    assert fleet.run("load", str(path), "--namespace", "bulk").returncode == 0
    said = on_terminal(fleet, "hold", "--namespace", "bulk", "--model", "trans*", expect_rc=2)
    assert "hold: 25 job(s) match: sweep-" in said and "+15 more" in said and "again with --yes" in said
    assert fleet.run("jobs", "--namespace", "bulk", "--state", "held", "--json").stdout.strip() == "[]"
    said = on_terminal(fleet, "hold", "--namespace", "bulk", "--model", "trans*", "--yes")
    assert said.count("pending -> held") == 25
    piped = fleet.run("release", "--namespace", "bulk", "--name", "sweep-*")  # a script needs no --yes
    assert piped.returncode == 0 and piped.stdout.count("held -> pending") == 25


def test_history_lists_each_attempt_of_the_window_and_totals_it(fleet):
    rows = json.loads(fleet.run("history", "--json").stdout)
    assert sorted(r["name"] for r in rows) == ["gbt-1", "gpu-mlp", "knn-1", "knn-2"]
    assert all(set(r) == {"job_id", "name", "attempt", "host", "worker", "gpus", "started_at", "ended_at",
                          "outcome", "exit_code"} for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert (by_name["gbt-1"]["outcome"], by_name["gbt-1"]["exit_code"]) == ("failed", 4)
    assert (by_name["gpu-mlp"]["gpus"], by_name["gpu-mlp"]["host"], by_name["knn-1"]["gpus"]) == (1, "gpu-24", 0)
    assert [r["name"] for r in json.loads(fleet.run("history", "--json", "--state", "failed").stdout)] == ["gbt-1"]
    on_gpu = json.loads(fleet.run("history", "--json", "--host", "gpu-*").stdout)
    assert "gpu-mlp" in {r["name"] for r in on_gpu} and {r["host"] for r in on_gpu} == {"gpu-24"}
    assert json.loads(fleet.run("history", "--json", "--since", "2d", "--until", "1d").stdout) == []
    summary = json.loads(fleet.run("history", "--summary", "--json").stdout)
    assert sum(h["attempts"] for h in summary["hosts"]) == 4 == sum(m["attempts"] for m in summary["models"])
    gpu_host = next(h for h in summary["hosts"] if h["name"] == "gpu-24")
    assert gpu_host["gpu_hours"] > 0 and all(h["core_hours"] >= h["hours"] > 0 for h in summary["hosts"])
    assert next(m for m in summary["models"] if m["name"] == "knn")["attempts"] == 2
    bad = fleet.run("history", "--since", "yesterday")
    assert bad.returncode == 2 and "--since 'yesterday': give an age" in bad.stderr
    assert "GPU_HOURS" in fleet.run("history", "--summary").stdout


def test_drain_with_a_reason_shows_draining_at_once_and_the_client_sees_what_the_cli_prints(fleet):
    assert fleet.run("drain", "thinkpad", "--reason", "fan noise").returncode == 0
    workers = {w["name"]: w for w in json.loads(fleet.run("workers", "--json").stdout)}
    assert (workers["thinkpad"]["state"], workers["thinkpad"]["drain_reason"]) == ("draining", "fan noise")
    assert "draining (fan noise)" in fleet.run("status").stdout
    assert fleet.run("drain", "thinkpad", "--undo").returncode == 0
    assert json.loads(fleet.run("workers", "--json").stdout)[0]["drain_reason"] == ""
    from scheduler import Client

    client = Client(url=fleet.env["FLEET_REDIS_URL"])
    cli = json.loads(fleet.run("jobs", "--json", "--state", "finished").stdout)
    assert [r["job_id"] for r in client.jobs(state="finished")] == [r["job_id"] for r in cli]
    assert client.explain("big-cnn") == json.loads(fleet.run("explain", "big-cnn", "--json").stdout)
    assert client.history(state="failed")[0]["name"] == "gbt-1"


def test_trackers_name_a_run_after_its_job_and_rq_shows_the_failures_last_lines(fleet):
    detail = json.loads(fleet.run("job", "gbt-1", "--json").stdout)
    log = fleet.run("logs", "gbt-1").stdout
    assert f"tracker gbt-1 m {detail['output_dir']} gbt-1" in log  # the group: the manifest m.toml
    import base64
    import zlib

    import redis

    client, keys = redis.Redis.from_url(fleet.env["FLEET_REDIS_URL"]), Keys("fleet")
    entries = client.xrange(keys.rq_results(detail["job_id"]))
    (failure,) = [zlib.decompress(base64.b64decode(f[b"exc_string"])).decode() for _, f in entries
                  if f.get(b"exc_string")]
    assert failure.startswith("gbt-1 attempt 1: failed: exit code 4") and failure.endswith("loss went nan at step 7")
    assert "Traceback" not in failure
    assert client.hget(keys.rq_job(detail["job_id"]), "description") == b"gbt-1"  # rq-dashboard's JOB


def test_actions_report_per_job_and_exit_codes(fleet):
    done = fleet.run("retry", "gbt-1", "knn-1")
    assert done.returncode == 2  # knn-1 is finished: refused, and said so; all or nothing, so gbt-1 stays failed
    assert "knn-1" in done.stdout and "retry applies to failed or canceled jobs, not finished" in done.stdout
    assert "nothing changed" in done.stdout and "failed -> pending" not in done.stdout
    done = fleet.run("retry", "gbt-1")
    assert done.returncode == 0 and "failed -> pending" in done.stdout
    assert fleet.run("cancel", "no-such").returncode == 3
    assert fleet.run("drain", "nobody").returncode == 3


def test_metrics_stream_and_compare_a_sweep_of_twelve(redis_server, real_redis, tmp_path):
    """A 12-job lr sweep reports metrics and a result; compare ranks them on the values."""
    procs = FleetProcs(redis_server.url, str(tmp_path))
    try:
        job_code = ("import json, os, scheduler\n"
                    "spec = json.load(open(os.environ['FLEET_JOB_FILE']))\n"
                    "lr = spec['hyper']['lr']\n"
                    "for step in range(3):\n"
                    "    scheduler.report(step, loss=1.0 / (step + 1) + lr)\n"
                    "scheduler.report(final=True, accuracy=round(1 - abs(lr - 0.3), 3), loss=lr)\n")
        lrs = [round(0.05 * i, 2) for i in range(1, 13)]
        manifest = {"schema_version": 1, "defaults": {"command": [sys.executable, "-c", job_code], "min_cores": 0},
                    "jobs": [{"name": f"lr-{lr}", "model": "sweep", "hyper": {"lr": lr, "epochs": 3}} for lr in lrs]}
        path = tmp_path / "m.toml"
        path.write_text(tomli_w.dumps(manifest))
        assert procs.run("load", str(path)).returncode == 0
        profile = write_profile(str(tmp_path / "h.toml"), "box", 8, 32)
        assert procs.worker("--burst", "--slots", "4", profile=profile, name="w").wait(120) == 0
        table = json.loads(procs.run("compare", "--model", "sweep", "--json").stdout)
        assert [row["name"] for row in table][:3] == ["lr-0.3", "lr-0.25", "lr-0.35"] or \
            [row["name"] for row in table][:3] == ["lr-0.3", "lr-0.35", "lr-0.25"]
        assert len(table) == 12 and table[0]["accuracy"] == 1.0 and table[0]["hyper.lr"] == 0.3
        assert "hyper.epochs" not in table[0]  # identical in every job: not a differing column
        by_loss = json.loads(procs.run("compare", "--model", "sweep", "--sort", "loss", "--ascending",
                                       "--json").stdout)
        assert [row["loss"] for row in by_loss] == sorted(lrs)
        metrics = json.loads(procs.run("metrics", "lr-0.1", "--json").stdout)
        assert [(m.get("step"), m["loss"]) for m in metrics if "step" in m] == [(0, 1.1), (1, 0.6), (2, 0.1 + 1 / 3)]
        plot = procs.run("metrics", "lr-0.1", "--plot").stdout.splitlines()
        assert plot[0] == "loss of lr-0.1 (3 points)" and plot[1].split("┤")[0].strip() == "1.1"
        assert any(0x2800 < ord(c) <= 0x28FF for c in "".join(plot)) and plot[-1].split() == ["0", "2"]
        assert "--metric 'acc': lr-0.1 reported no such number; it has loss" in \
            procs.run("metrics", "lr-0.1", "--plot", "--metric", "acc").stderr
        overlay = procs.run("compare", "--model", "sweep", "--plot", "loss").stdout.splitlines()
        assert overlay[0] == "loss of 12 job(s)" and sum(line.startswith("  • ") for line in overlay) == 1
        assert {line.split()[-1] for line in overlay[-12:]} == {f"lr-{lr}" for lr in lrs}
        human = procs.run("compare", "lr-0.1", "--sort", "loss").stdout.splitlines()
        assert human[0].split()[-2:] == ["LOSS", "CURVE"] and human[1].split()[-1] == "█▂▁"  # the loss as it fell
        ranked = procs.run("compare", "lr-0.1").stdout.splitlines()  # sorted by accuracy, which has no curve
        assert ranked[0].split()[-2:] == ["LOSS", "CURVE"] and ranked[1].split()[-1] == "█▂▁"
        csv_out = procs.run("compare", "lr-0.1", "lr-0.2", "--csv").stdout.splitlines()
        assert csv_out[0].split(",")[:3] == ["name", "job_id", "hyper.lr"] and len(csv_out) == 3
        assert procs.run("compare").returncode == 2
    finally:
        procs.stop_all()


def test_verify_passes_then_names_a_modified_file(redis_server, real_redis, tmp_path):
    procs = FleetProcs(redis_server.url, str(tmp_path))
    try:
        code = ("import os\n"
                "d = os.environ['FLEET_OUTPUT_DIR']\n"
                "os.makedirs(os.path.join(d, 'ckpt'))\n"
                "open(os.path.join(d, 'ckpt', 'model.bin'), 'wb').write(os.urandom(3 << 20))\n"
                "open(os.path.join(d, 'notes.txt'), 'w').write('ok')\n")
        manifest = {"schema_version": 1, "jobs": [{"name": "art", "model": "m", "command": [sys.executable, "-c", code]}]}
        path = tmp_path / "m.toml"
        path.write_text(tomli_w.dumps(manifest))
        procs.run("load", str(path))
        assert procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8),
                            name="w").wait(60) == 0
        ok = procs.run("verify", "art", "--json")
        data = json.loads(ok.stdout)
        assert ok.returncode == 0 and data["ok"] and data["files"] >= 4  # ckpt/model.bin, notes.txt, log, ...
        out_dir = data["output_dir"]
        with open(os.path.join(out_dir, "ckpt", "model.bin"), "r+b") as fh:
            fh.seek(1 << 20)
            fh.write(b"x")
        os.remove(os.path.join(out_dir, "notes.txt"))
        open(os.path.join(out_dir, "stray.txt"), "w").write("?")
        bad = procs.run("verify", "art")
        assert bad.returncode == 2
        assert "changed: ckpt/model.bin" in bad.stdout and "missing: notes.txt" in bad.stdout
        assert "extra: stray.txt" in bad.stdout
    finally:
        procs.stop_all()
