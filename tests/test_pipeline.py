"""A train -> eval pipeline for three models on real workers: the run record end to end.

One training fails until the operator "fixes" it (a flag file appears). Its eval
must end blocked, not failed or lost, and run once `fleet retry` lets the training
finish; every eval must read the model its own training wrote (through
``{after.<train>.output_dir}``); metrics stream into Redis; every output is hashed
and `fleet verify` notices a modified model.
"""

from __future__ import annotations

import json
import os
import sys

import tomli_w
from support.procs import FleetProcs, write_profile

from support.stores import make_store

TRAIN = """
import json, os, sys, scheduler
model, fixed_flag = sys.argv[1], sys.argv[2]
if model == "c" and not os.path.exists(fixed_flag):
    sys.exit("training c diverged")
for step in range(3):
    scheduler.report(step, loss=round(1.0 / (step + 1), 3))
with open(os.path.join(os.environ["FLEET_OUTPUT_DIR"], "model.json"), "w") as fh:
    json.dump({"model": model, "weights": [1, 2, 3]}, fh)
"""

EVAL = """
import json, os, sys, scheduler
with open(os.path.join(sys.argv[1], "model.json")) as fh:
    trained = json.load(fh)
scheduler.report(final=True, evaluated=trained["model"], accuracy=0.9)
"""


def test_pipeline_runs_blocks_and_resumes_after_retry(redis_server, real_redis, tmp_path):
    procs = FleetProcs(redis_server.url, str(tmp_path))
    try:
        store = make_store(real_redis)
        (tmp_path / "train.py").write_text(TRAIN)
        (tmp_path / "eval.py").write_text(EVAL)
        fixed = tmp_path / "fixed"
        jobs = []
        for model in ("a", "b", "c"):
            jobs.append({"name": f"train-{model}", "model": model, "mode": "train", "max_attempts": 1,
                         "command": [sys.executable, str(tmp_path / "train.py"), model, str(fixed)]})
            jobs.append({"name": f"eval-{model}", "model": model, "mode": "eval", "after": [f"train-{model}"],
                         "command": [sys.executable, str(tmp_path / "eval.py"),
                                     f"{{after.train-{model}.output_dir}}"]})
        path = tmp_path / "pipeline.toml"
        path.write_text(tomli_w.dumps({"schema_version": 1, "defaults": {"min_cores": 1}, "jobs": jobs}))
        assert procs.run("load", str(path)).returncode == 0
        profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)

        assert procs.worker("--burst", profile=profile, name="w1").wait(120) == 0

        def state(name):
            return store.jobs.get(store.jobs.resolve(name)).state.value

        assert {n: state(n) for n in ("train-a", "eval-a", "train-b", "eval-b", "train-c", "eval-c")} == {
            "train-a": "finished", "eval-a": "finished", "train-b": "finished", "eval-b": "finished",
            "train-c": "failed", "eval-c": "blocked"}
        explained = procs.run("explain", "eval-c").stdout
        assert "train-c" in explained, explained
        metrics = json.loads(procs.run("metrics", "train-a", "--json").stdout)
        assert [m["loss"] for m in metrics if "step" in m] == [1.0, 0.5, 0.333]
        latest = json.loads(procs.run("job", "train-a", "--json").stdout)["latest_metrics"]
        assert (latest["step"], latest["loss"]) == (2, 0.333)
        assert "latest metrics (attempt 1):" in procs.run("job", "train-a").stdout
        results = {row["name"]: row for row in json.loads(procs.run("compare", "--all", "--json").stdout)}
        assert results["eval-a"]["evaluated"] == "a" and results["eval-b"]["evaluated"] == "b"

        verified = procs.run("verify", "train-a", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        model_file = os.path.join(json.loads(verified.stdout)["output_dir"], "model.json")
        with open(model_file, "a") as fh:
            fh.write(" ")
        tampered = procs.run("verify", "train-a")
        assert tampered.returncode == 2 and "changed: model.json" in tampered.stdout

        fixed.write_text("lr halved")
        assert procs.run("retry", "train-c").returncode == 0
        assert state("eval-c") == "pending"
        assert procs.worker("--burst", profile=profile, name="w2").wait(120) == 0
        assert state("train-c") == "finished" and state("eval-c") == "finished"
        results = {row["name"]: row for row in json.loads(procs.run("compare", "--all", "--json").stdout)}
        assert results["eval-c"]["evaluated"] == "c"
        for name in ("train-a", "eval-a", "train-b", "eval-b", "eval-c"):
            assert store.jobs.get(store.jobs.resolve(name)).attempts == 1, name
        assert store.jobs.get(store.jobs.resolve("train-c")).attempts == 2
    finally:
        procs.stop_all()
