"""``fleet demo``: the main job end to end on this machine."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from ..demo.run import MANIFESTS, DemoOptions, run_demo
from ..settings import DEFAULT_NAMESPACE
from .common import refuse_bad_flags


def run(args: argparse.Namespace, out: TextIO) -> int:
    refuse_bad_flags(args)
    return run_demo(DemoOptions(
        redis_url=getattr(args, "redis_url", None), namespace=getattr(args, "namespace", None) or DEFAULT_NAMESPACE,
        manifest=args.manifest or os.path.join(MANIFESTS, "demo.toml"),
        hosts_glob=os.path.join(args.hosts_dir or os.path.join(MANIFESTS, "hosts"), "*.toml"),
        keep=args.keep, timeout_s=args.timeout_s, fake_redis=args.fake_redis), out)
