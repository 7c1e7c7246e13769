"""fleet: a Redis work-queue scheduler for heterogeneous ML training fleets.

The package is split by responsibility: ``manifest`` turns an operator's TOML into
frozen specs, ``matching`` is the pure host x job rule, ``store`` owns every Redis
key and Lua script, ``receiver`` keeps Redis in step with the manifest, and ``cli``
is the thin shell operators type into. ``worker`` (a sibling package) probes a box
and runs what it may claim.
"""

__version__ = "0.1.0"
