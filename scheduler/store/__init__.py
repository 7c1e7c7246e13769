"""The Redis job store: the code that reads and writes fleet's keys (named in scheduler/keys.py).

Commands, status, explain, prune, the demo and the worker ask the store and format what
it returns. The worker's hot path composes its round trips from the store's pieces
(``queue_*`` functions that add a command to a caller's pipeline, so a claim's dispatch
stays one or two round trips); only rq's own records (a worker's, a job's) are rq's to
read, through rq's API or scheduler/store/rq_bridge.py.
"""

from .loading import LoadPlan, PlanEntry
from .queries import JobRecord
from .store import Store

__all__ = ["JobRecord", "LoadPlan", "PlanEntry", "Store"]
