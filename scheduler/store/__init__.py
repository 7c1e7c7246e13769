"""The Redis job store: the code that reads and writes fleet's keys (named in scheduler/keys.py).

Commands, status, explain, prune and the claim loop ask the store and format what it
returns. Still calling Redis themselves, until their rewrite: worker/rq_worker.py,
worker/execute.py, worker/output_stream.py and scheduler/demo/run.py.
"""

from .loading import LoadPlan, PlanEntry
from .queries import JobRecord
from .store import Store

__all__ = ["JobRecord", "LoadPlan", "PlanEntry", "Store"]
