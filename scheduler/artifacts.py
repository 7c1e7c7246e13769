"""Integrity manifests of an attempt's outputs: what `fleet verify` checks later.

Every file under the output dir is hashed (sha256, streamed in 1 MiB blocks, so
large checkpoints are fine); ``overall`` is the sha256 over the sorted
``path\\0hash\\n`` pairs, so one value says whether anything changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from .runs_layout import MANIFEST_FILE, TMP_SUFFIX, manifest_file, temp_file

BLOCK = 1 << 20


def _sha256_and_size(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def hash_tree(root: str) -> dict[str, Any]:
    """The manifest of every regular file under ``root`` (symlinks are not followed).

    Walks with scandir, whose entries already know their type, and counts bytes as it
    hashes: os.walk plus relpath, isfile, islink and getsize per file cost ~0.3 ms of
    each job's end in the work horse for a handful of files."""
    files: dict[str, str] = {}
    total = 0
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:  # unreadable or gone: skipped, as os.walk does
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                pending.append((rel + os.sep, entry.path))
            elif is_file and rel != MANIFEST_FILE and not rel.endswith(TMP_SUFFIX):
                files[rel], size = _sha256_and_size(entry.path)
                total += size
    overall = hashlib.sha256("".join(f"{p}\0{h}\n" for p, h in sorted(files.items())).encode()).hexdigest()
    return {"files": files, "overall": overall, "bytes": total, "created": round(time.time(), 3)}


def write_manifest(root: str) -> dict[str, Any]:
    manifest = hash_tree(root)
    path = manifest_file(root)
    tmp = temp_file(path)
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, sort_keys=True, indent=1)
    os.replace(tmp, path)
    return manifest


@dataclass(frozen=True)
class Verification:
    missing: list[str]
    changed: list[str]
    extra: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)


def verify(root: str, manifest: dict[str, Any]) -> Verification:
    now = hash_tree(root)["files"] if os.path.isdir(root) else {}
    recorded = manifest.get("files", {})
    return Verification(missing=sorted(set(recorded) - set(now)),
                        changed=sorted(p for p in set(recorded) & set(now) if recorded[p] != now[p]),
                        extra=sorted(set(now) - set(recorded)))
