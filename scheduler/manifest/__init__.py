"""The manifest: an operator's TOML turned into frozen, validated specs."""

from .loader import load_manifest, parse_manifest, safe_name
from .locate import locate_manifest
from .model import HostSpec, JobSpec, Manifest
from .writer import dumps_manifest

__all__ = ["HostSpec", "JobSpec", "Manifest", "dumps_manifest", "load_manifest", "locate_manifest",
           "parse_manifest", "safe_name"]
