"""``fleet receiver [--manifest PATH]``: the daemon systemd runs."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..manifest import locate_manifest
from ..receiver import Receiver
from .common import connect


def run(args: argparse.Namespace, out: TextIO) -> int:
    path = locate_manifest(args.manifest)
    store = connect(args)
    return Receiver(store, path).run()
