"""Sweeps (`[jobs.matrix]`): an expanded job is exactly the job written out by hand, and every
mistake in a sweep is one error naming the entry, the axis and the point."""

from __future__ import annotations

import os

import pytest

from scheduler.cli import main
from scheduler.errors import ManifestError
from scheduler.manifest import load_manifest, parse_manifest
from scheduler.plan_text import plan_lines, sweep_counts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = '''schema_version = 1
[[jobs]]
name = "{model}-lr{hyper[lr]}"
mode = "realistic"
hyper = { epochs = 3 }
[jobs.matrix]
model = ["mlp", "cnn"]
"hyper.lr" = [0.1, 0.01, 0.001]
exclude = [{ model = "cnn", "hyper.lr" = 0.001 }]
'''
BY_HAND = "schema_version = 1\n" + "".join(
    f'[[jobs]]\nname = "{m}-lr{lr}"\nmodel = "{m}"\nmode = "realistic"\nhyper = {{ epochs = 3, lr = {lr} }}\n'
    for m in ("mlp", "cnn") for lr in (0.1, 0.01, 0.001) if (m, lr) != ("cnn", 0.001))


def test_a_sweep_is_the_jobs_written_out_by_hand_same_fields_same_ids():
    swept, written = parse_manifest(SWEEP, "m.toml"), parse_manifest(BY_HAND, "h.toml")
    assert [j.name for j in swept.jobs] == ["mlp-lr0.1", "mlp-lr0.01", "mlp-lr0.001", "cnn-lr0.1", "cnn-lr0.01"]
    assert [(j.name, j.job_id, j.to_dict()) for j in swept.jobs] == \
        [(j.name, j.job_id, j.to_dict()) for j in written.jobs]
    assert swept.sweeps == {"jobs[0] '{model}-lr{hyper[lr]}'": tuple(j.name for j in swept.jobs)}


def test_the_example_manifest_as_sweeps_is_its_54_jobs_written_out():
    """manifests/example.toml was rewritten as 13 sweeps; not one job_id or field changed."""
    swept = load_manifest(os.path.join(ROOT, "manifests", "example.toml"))
    written = load_manifest(os.path.join(ROOT, "tests", "data", "example_written_out.toml"))
    assert len(swept.jobs) == 54 and len(swept.sweeps) == 13
    assert {j.name: (j.job_id, j.to_dict()) for j in swept.jobs} == \
        {j.name: (j.job_id, j.to_dict()) for j in written.jobs}


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as err:
        parse_manifest("schema_version = 1\n" + text, "m.toml")
    return [str(p) for p in err.value.problems]


def sweep(matrix: str, name: str = "{model}-{seed}", extra: str = "") -> str:
    return f'[[jobs]]\nname = "{name}"\nmodel = "m"\n{extra}[jobs.matrix]\n{matrix}\n'


def test_each_mistake_in_a_sweep_is_one_error_naming_the_entry_the_axis_and_the_point():
    (same,) = problems(sweep("seed = [1, 2]", name="{model}"))
    assert "jobs[0] '{model}'" in same and "seed=1 and seed=2 both make the name 'm'" in same
    assert "the name cannot be an axis" in problems(sweep('name = ["a", "b"]'))[0]
    assert "'sed' is not a job field or lab field" in problems(sweep("sed = [1, 2]"))[0]
    assert "'model' is not a table, so 'model.x' cannot set a key" in problems(sweep('"model.x" = [1]'))[0]
    assert "matrix.seed" in problems(sweep("seed = []"))[0] and "non-empty list" in problems(sweep("seed = 3"))[0]
    assert "'mode' is not an axis of this sweep" in problems(sweep("seed = [1]\nexclude = [{ mode = 'x' }]"))[0]
    (typed,) = problems(sweep('seed = [1, "two"]'))
    assert "jobs[0] '{model}-{seed}' point seed='two'" in typed and "seed" in typed
    (unknown,) = problems(sweep("seed = [1]", name="{model}-{hyper[lr]}"))
    assert "point seed=1" in unknown and "'lr'" in unknown
    (clash,) = problems('[[jobs]]\nname = "m-1"\nmodel = "m"\nseed = 9\n' + sweep("seed = [1, 2]"))
    assert "jobs[1] '{model}-{seed}' point seed=1" in clash and "duplicate job name; jobs[0] already uses it" in clash


def test_load_shows_the_plan_per_sweep_and_prints_the_expansion(store, capsys):
    manifest = parse_manifest(SWEEP, "m.toml")
    plan = store.load(manifest, dry_run=True)
    label = "jobs[0] '{model}-lr{hyper[lr]}'"
    assert sweep_counts(plan, manifest.sweeps) == {label: {"added": 5, "updated": 0, "unchanged": 0, "revived": 0}}
    assert f"  sweep {label}: 5 jobs: 5 added" in plan_lines(plan, manifest.sweeps)
    path = os.path.join(ROOT, "manifests", "example.toml")
    assert main(["load", path, "--print", "--dry-run", "--offline"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("[[jobs]]") == 54 and 'name = "knn-oracle-random"' in printed and "matrix" not in printed
