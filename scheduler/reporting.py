"""``scheduler.report()``: how a Python job reports metrics to fleet (any language can do the same).

A metric is one JSON line appended to ``$FLEET_METRICS``; the worker streams those
lines into Redis as they come (`fleet metrics JOB`). ``final=True`` also writes
``result.json`` in ``$FLEET_OUTPUT_DIR``, the job's summary that `fleet compare`
reads. Outside a fleet job (no ``$FLEET_METRICS``) reporting does nothing.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .runs_layout import result_file, temp_file


def report(step: int | None = None, *, final: bool = False, **metrics: Any) -> None:
    path = os.environ.get("FLEET_METRICS")
    if path:
        line = {"time": round(time.time(), 3), **metrics}
        if step is not None:
            line["step"] = step
        with open(path, "a") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
    out_dir = os.environ.get("FLEET_OUTPUT_DIR")
    if final and out_dir:
        path = result_file(out_dir)
        tmp = temp_file(path)
        with open(tmp, "w") as fh:
            json.dump(metrics, fh, sort_keys=True)
        os.replace(tmp, path)
