"""Write a manifest back as TOML: the normalised form ``fleet load --dry-run --print`` shows.

Every job is written with all its fields spelled out (defaults applied), so the
output is what fleet actually runs and loads to the same job ids.
"""

from __future__ import annotations

from typing import Any

import tomli_w

from .model import Manifest


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    data: dict[str, Any] = {"schema_version": manifest.schema_version, "name": manifest.name}
    lab_defaults = {k: manifest.defaults[k] for k in manifest.lab_fields}
    if lab_defaults:
        data["defaults"] = lab_defaults
    if manifest.allowed:
        data["allowed"] = manifest.allowed
    if manifest.hosts:
        data["hosts"] = {}
        for name, host in manifest.hosts.items():
            entry = host.to_dict()
            del entry["name"]
            data["hosts"][name] = entry
    data["jobs"] = [_job_table(job.to_dict()) for job in manifest.jobs]
    return data


def _job_table(job: dict[str, Any]) -> dict[str, Any]:
    # name first, then the rest sorted: stable diffs between two normalised manifests.
    ordered = {"name": job["name"]}
    ordered.update({k: job[k] for k in sorted(job) if k != "name"})
    return ordered


def dumps_manifest(manifest: Manifest) -> str:
    return tomli_w.dumps(manifest_to_dict(manifest))
