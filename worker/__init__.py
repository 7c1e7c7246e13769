"""The fleet worker: probe the box, claim what it satisfies, run it through rq.

What this host offers: ``probe`` (with ``gpus``, ``cgroups`` and ``host_profile``).
Choosing work: ``claim`` (the atomic host-matching pop) and ``preference`` (leaving a job
to a better-placed worker). rq's side: ``rq_worker`` (the Worker and Queue subclasses,
leases renewed with rq's heartbeat) and ``runtime`` (the registry entry, pauses, turning a
claim into rq's job and an ``attempt``). One attempt: ``attempt`` (its output dir, argv,
env and result pipe), ``execute`` (what the work horse runs), ``runner`` (the job's
process, its timeout and stop), ``proctree`` (process groups, orphans, kills),
``output_stream`` (its output into Redis) and ``completion`` (recording its end).
"""
