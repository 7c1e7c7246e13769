"""``python -m worker.entry module:function``: how an ``entrypoint`` job runs.

The function gets the job spec (a dict, from $FLEET_JOB_FILE) and runs in its own
process like any command, so timeouts and cancel treat both kinds alike.
"""

from __future__ import annotations

import importlib
import json
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1 or ":" not in argv[0]:
        print("usage: python -m worker.entry package.module:function", file=sys.stderr)
        return 2
    module_name, func_name = argv[0].split(":", 1)
    func = getattr(importlib.import_module(module_name), func_name)
    with open(os.environ["FLEET_JOB_FILE"]) as fh:
        spec = json.load(fh)
    result = func(spec)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
