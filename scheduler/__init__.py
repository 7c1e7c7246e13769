"""fleet: a Redis work-queue scheduler for heterogeneous ML training fleets.

The package is split by responsibility: ``manifest`` turns an operator's TOML into
frozen specs, ``matching`` is the pure host x job rule, ``store`` owns every Redis
key and Lua script, ``receiver`` keeps Redis in step with the manifest, and ``cli``
is the thin shell operators type into. ``worker`` (a sibling package) probes a box
and runs what it may claim.
"""

__version__ = "0.1.0"


def report(step=None, *, final=False, **metrics):  # noqa: ANN001 - thin re-export, typed in scheduler.reporting
    """Report metrics from inside a fleet job; see :func:`scheduler.reporting.report`."""
    from .reporting import report as _report

    _report(step, final=final, **metrics)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562
    """``from scheduler import Client`` without importing redis for every command that imports scheduler."""
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
