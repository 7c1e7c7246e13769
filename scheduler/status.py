"""The ``fleet status`` document: counts, workers, what nobody can run, recent failures.

Pure functions over what the store reads (:class:`FleetView`, from counters and indexes
only, never by scanning jobs, so it costs the same few round trips at 100 jobs as at
100,000); :func:`status_document` is the one place that asks the store.
"""

from __future__ import annotations

import time

from .reasons import nobody_can_run
from .store.views import FleetView

RECENT_FAILURES = 5
SAMPLE_NAMES = 5


def status_document(store) -> dict:
    """The document `fleet status --json` prints, from four round trips at most."""
    view = store.fleet_view(RECENT_FAILURES, now=time.time())
    stuck = unrunnable(view)
    return document(view, store.pending_names(stuck, SAMPLE_NAMES), stuck)


def unrunnable(view: FleetView) -> list[str]:
    """The classes with pending jobs that no live worker can run even when idle, in the store's
    order: the same rule (and the same host defaults for a host not in [hosts]) as the claim."""
    live = [w for w in view.workers if w.live]
    return [class_id for class_id, cls in view.classes.items() if view.pending.get(class_id) and
            nobody_can_run(cls, live, view.hosts) is not None]


def held_gpus(view: FleetView) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """(host, GPU ledger key) -> the running jobs holding it, each with the VRAM it reserved there:
    indexed once, not searched per GPU of every worker."""
    held: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for job in view.running:
        for gpu, vram in zip(job.gpu_keys, job.vram_gib):
            held.setdefault((job.host, gpu), []).append((job.name, vram))
    return held


def gpu_reservations(held: list[tuple[str, float]], total_gib: float, probed_free_gib: float) -> dict:
    """What fleet's running jobs ``held`` on one GPU, and what that leaves: the probe's free VRAM
    can lag a job's real use, and a simulated GPU's never moves, so free is the smaller of the
    probe's and the total less the reservations (as the claim counts it)."""
    reserved = sum(vram for _, vram in held)
    return {"reserved_gib": round(reserved, 3), "held_by": [name for name, _ in held],
            "vram_free_gib": round(max(0.0, min(probed_free_gib, total_gib - reserved)), 3)}


def document(view: FleetView, sample_names: dict[str, list[str]], stuck: list[str] | None = None) -> dict:
    """The documented ``fleet status --json`` shape; ``sample_names`` names a few waiting jobs of
    each unrunnable class (those without a name left out); ``stuck``: :func:`unrunnable` of the
    view, when the caller has it already."""
    worker_docs = []
    held = held_gpus(view)
    for w in view.workers:
        doc = w.to_json(view.now)
        doc["job_names"] = [view.running_names.get(job_id, job_id) for job_id in doc["jobs"]]
        doc["declared"] = w.host.hostname in view.hosts  # False: not in [hosts], admitted with defaults
        for gpu, gpu_doc in zip(w.host.gpus, doc["gpus"]):
            gpu_doc["key"] = gpu.ledger_key  # what a job row's "gpu" names
            gpu_doc.update(gpu_reservations(held.get((w.host.hostname, gpu.ledger_key), []), gpu.vram_total_gib,
                                            gpu.vram_free_gib))
        worker_docs.append(doc)
    return {
        "jobs": view.counts,
        "workers": worker_docs,
        "unrunnable": unrunnable_needs(view, unrunnable(view) if stuck is None else stuck, sample_names),
        "recent_failures": [{"job_id": r.job_id, "name": r.name, "reason": r.reason, "host": r.host}
                            for r in view.recent_failures],
        "load": load_document(view),
    }


def unrunnable_needs(view: FleetView, stuck: list[str], sample_names: dict[str, list[str]]) -> list[dict]:
    """What nobody can run, one entry per unmet need (its REASON phrase, e.g. "No host fits:
    min_vram_gib 200"), not per class: ten classes that differ only in their timeouts are one
    need. Each entry: the phrase, the jobs waiting for it, a few of their names, how many
    classes it covers and the first one's constraints."""
    live = [w for w in view.workers if w.live]
    grouped: dict[str, dict] = {}
    for class_id in stuck:
        phrase = nobody_can_run(view.classes[class_id], live, view.hosts) or "No host fits"
        entry = grouped.setdefault(phrase, {"reason": phrase, "pending": 0, "jobs": [], "classes": 0,
                                            "needs": view.classes[class_id].to_dict()})
        entry["pending"] += int(view.pending[class_id])
        entry["classes"] += 1
        entry["jobs"] += sample_names.get(class_id, [])[:max(0, SAMPLE_NAMES - len(entry["jobs"]))]
    return list(grouped.values())


def load_document(view: FleetView) -> dict | None:
    """A manifest load under way: its phase ("planning", "staged", "applying"), the step it is
    at, whether its loader's lease ran out (``interrupted``: the next claim or load finishes
    it) and whether claims wait for it (``claims_wait``: it is past its commit point)."""
    if view.load is None:
        return None
    load = view.load
    return {"phase": load["phase"], "step": load["step"], "steps": load["steps"],
            "interrupted": load["expires"] < view.now, "claims_wait": load["phase"] == "applying"}
