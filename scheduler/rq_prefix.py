"""Point rq at the namespace's keys before rq is imported.

rq reads ``RQ_KEY_PREFIX`` once, at import. fleet keeps a namespace's rq records
under ``{<namespace>}:rq`` (same cluster slot as fleet's keys, and two fleets on
one Redis never share rq job ids), so a process must set it before its first
``import rq``; this module is the one place that does.
"""

from __future__ import annotations

import os
import sys

from .errors import ConfigError
from .keys import Keys


def use_rq_prefix(keys: Keys) -> None:
    wanted = keys.rq_prefix
    loaded = sys.modules.get("rq.defaults")
    if loaded is not None and loaded.RQ_KEY_PREFIX != wanted:
        raise ConfigError(f"rq was imported with RQ_KEY_PREFIX={loaded.RQ_KEY_PREFIX!r} but namespace "
                          f"{keys.namespace!r} needs {wanted!r}; run one namespace per process")
    os.environ["RQ_KEY_PREFIX"] = wanted
