"""Redis Cluster (issue 18): a URL of any node works, two namespaces on different nodes run side
by side, and a reshard of the namespace's slot under a live worker is followed. A real
3-master cluster on loopback."""

from __future__ import annotations

import json
import sys

import tomli_w
from support.cluster import Cluster, namespace_slot
from support.procs import FleetProcs, wait_for, write_profile

from scheduler.settings import Settings
from scheduler.store import Store


def manifest(path, names: list[str]) -> str:
    path.write_text(tomli_w.dumps({"schema_version": 1, "defaults": {"command": [sys.executable, "-c", "pass"]},
                                   "jobs": [{"name": n, "model": "m", "seed": i} for i, n in enumerate(names)]}))
    return str(path)


def test_any_node_serves_a_namespace_and_a_reshard_under_a_live_worker_is_followed(tmp_path, tally):
    with Cluster() as cluster:
        fleet_owner = cluster.owner(namespace_slot("fleet"))
        other = next(f"lab{i}" for i in range(100) if cluster.owner(namespace_slot(f"lab{i}")) is not fleet_owner)
        elsewhere = next(n for n in cluster.nodes if n is not fleet_owner)
        url = f"redis://127.0.0.1:{elsewhere.port}/0"  # not the slot's owner: it answers MOVED
        store = Store.connect(Settings(redis_url=url))
        procs = FleetProcs(url, str(tmp_path))
        try:
            assert procs.run("load", manifest(tmp_path / "a.toml", ["a1", "a2", "a3"])).returncode == 0
            lab = procs.run("--namespace", other, "load", manifest(tmp_path / "b.toml", ["b1"]))
            assert lab.returncode == 0, lab.stderr
            profile = write_profile(str(tmp_path / "h.toml"), "box", 2, 8)
            worker = procs.worker(profile=profile, name="w", lease_s=3)
            wait_for(lambda: store.jobs.counts()["finished"] == 3, timeout_s=60, what="the first jobs")
            assert fleet_owner.client().exists(store.keys.job(store.jobs.resolve("a1")))

            target = next(n for n in cluster.nodes if n is not fleet_owner and n is not elsewhere)
            cluster.move_slot(namespace_slot("fleet"), target)  # the worker is live and idle meanwhile
            tally.fault("the namespace's slot resharded under a live worker")
            assert procs.run("load", manifest(tmp_path / "a.toml", ["a1", "a2", "a3", "a4"])).returncode == 0
            wait_for(lambda: store.jobs.counts()["finished"] == 4, timeout_s=60, what="a job after the reshard")
            assert target.client().exists(store.keys.job(store.jobs.resolve("a4")))
            assert worker.poll() is None and "Traceback" not in procs.log_of(worker)
            status = procs.run("--namespace", other, "status", "--json")
            assert status.returncode == 0 and json.loads(status.stdout)["jobs"]["pending"] == 1
        finally:
            procs.stop_all()
