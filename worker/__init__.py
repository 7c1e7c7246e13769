"""The fleet worker: probe the box, claim what it satisfies, run it through rq.

A worker is four small parts: ``probe`` (what this host offers), ``claim``
(the atomic host-matching pop), ``runner`` (the job's process group, its timeout
and logs) and ``heartbeat`` (the lease that lets the reaper recover a dead worker).
"""
