"""The Redis job store: the only code that reads or writes fleet's keys."""

from .loading import LoadPlan, PlanEntry
from .queries import JobRecord
from .store import Store

__all__ = ["JobRecord", "LoadPlan", "PlanEntry", "Store"]
