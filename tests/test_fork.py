"""`fleet fork`: a new [[jobs]] entry from a job, checked against the manifest, appended atomically
with the file's comments kept, linked both ways once loaded."""

from __future__ import annotations

import os
import tomllib

import pytest

from scheduler.client import Client
from scheduler.errors import ManifestError, UsageError
from scheduler.manifest import load_manifest

MANIFEST = """# the lab's sweep: keep this comment
schema_version = 1
[defaults]
min_ram_gib = 4
split_recipe = "host"   # a lab field
[[jobs]]
name = "cnn-a"
model = "cnn"
mode = "realistic"
min_ram_gib = 16
hyper = { lr = 0.001, epochs = 20 }
"""


@pytest.fixture
def loaded(store, tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(MANIFEST)
    store.load(load_manifest(str(path)))
    return Client(store=store), str(path)


def test_a_fork_is_the_job_with_the_changes_and_a_link_to_it(loaded):
    client, path = loaded
    doc = client.fork("cnn-a", ["hyper.lr=0.01", "mode=oracle"])
    assert doc["name"] == "cnn-a-fork" and doc["appended_to"] is None
    table = tomllib.loads(doc["toml"])["jobs"][0]
    # the job's fields where they differ from the manifest's defaults, the changes, the link
    assert table == {"name": "cnn-a-fork", "model": "cnn", "mode": "oracle", "min_ram_gib": 16,
                     "hyper": {"lr": 0.01, "epochs": 20}, "forked_from": "cnn-a"}
    assert doc["job_id"] != client.store.jobs.resolve("cnn-a")
    with open(path) as fh:
        assert fh.read() == MANIFEST  # printing writes nothing


def test_append_adds_it_atomically_keeping_the_file_and_the_load_links_both_ways(loaded):
    client, path = loaded
    os.chmod(path, 0o640)
    doc = client.fork("cnn-a", ["seed=3"], name="cnn-a-seed3", append=path)
    with open(path) as fh:
        text = fh.read()
    assert text.startswith(MANIFEST.rstrip("\n")) and "# forked from cnn-a by `fleet fork`" in text
    assert os.stat(path).st_mode & 0o777 == 0o640
    manifest = load_manifest(path)
    assert [j.name for j in manifest.jobs] == ["cnn-a", "cnn-a-seed3"]
    assert manifest.job_named("cnn-a-seed3").job_id == doc["job_id"]
    client.store.load(manifest)
    assert client.job("cnn-a")["forked_into"] == ["cnn-a-seed3"]
    assert client.job("cnn-a-seed3")["forked_from"] == "cnn-a"
    assert client.fork("cnn-a", ["seed=4"])["name"] == "cnn-a-fork"  # the default name is still free


def test_a_fork_that_changes_nothing_or_breaks_a_rule_is_refused_and_nothing_written(loaded):
    client, path = loaded
    with pytest.raises(UsageError, match="would be cnn-a itself"):
        client.fork("cnn-a", ["priority=5"])  # scheduling only: the same job
    with pytest.raises(ManifestError, match="min_vram_gb"):
        client.fork("cnn-a", ["min_vram_gb=8"], append=path)  # the manifest's own did-you-mean
    with pytest.raises(UsageError, match="--name"):
        client.fork("cnn-a", ["name=x"])
    with open(path) as fh:
        assert fh.read() == MANIFEST
