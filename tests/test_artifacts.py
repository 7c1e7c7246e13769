"""What an artifact manifest covers: every regular file under the output dir, by relative path.

Symlinks (to files or dirs) are not followed, the manifest itself and ``*.tmp`` files are
left out, nested dirs are walked, and ``bytes`` is the total size of what was hashed.
"""

from __future__ import annotations

import hashlib
import os

from scheduler.artifacts import hash_tree, verify, write_manifest


def test_the_manifest_covers_regular_files_only(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "log.txt").write_text("x" * 5000)
    (tmp_path / "a" / "b" / "deep.txt").write_text("deep")
    (tmp_path / "a" / "artifacts.json").write_text("a nested file of that name is an output")
    (tmp_path / "a" / "half-written.tmp").write_text("t")
    (tmp_path / "empty").write_text("")
    os.symlink(tmp_path / "log.txt", tmp_path / "file-link")
    os.symlink(tmp_path / "a", tmp_path / "dir-link")
    os.mkfifo(tmp_path / "fifo")
    manifest = write_manifest(str(tmp_path))
    assert sorted(manifest["files"]) == [os.path.join("a", "artifacts.json"), os.path.join("a", "b", "deep.txt"),
                                         "empty", "log.txt"]
    assert manifest["files"]["log.txt"] == hashlib.sha256(b"x" * 5000).hexdigest()
    assert manifest["bytes"] == 5000 + 4 + len("a nested file of that name is an output")
    assert hash_tree(str(tmp_path))["overall"] == manifest["overall"]  # its own file is not in it
    assert verify(str(tmp_path), manifest).ok
    (tmp_path / "a" / "b" / "deep.txt").write_text("changed")
    assert verify(str(tmp_path), manifest).changed == [os.path.join("a", "b", "deep.txt")]


def test_a_missing_dir_hashes_to_nothing(tmp_path):
    assert hash_tree(str(tmp_path / "gone"))["files"] == {}
