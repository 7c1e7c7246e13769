"""What fleet accepts as a name: of a job, a host, a worker, a namespace.

Each such name ends up inside a Redis key, a path under the runs dir or a line an
operator reads, so each is checked against one pattern, defined here once, wherever it
enters: the manifest loader, the worker's flags and probe, a host profile, the settings.
"""

from __future__ import annotations

import re

# A job's name: also the first part of its output dir's name (scheduler/runs_layout.py).
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A host's name, as [hosts] declares it and a worker reports it: one DNS label's worth.
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A worker's name (default host.pid); rq allows more, fleet keeps it printable and key-safe.
WORKER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}")
# A namespace: the hash tag of every key (scheduler/keys.py).
NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
