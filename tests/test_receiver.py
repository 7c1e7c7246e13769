"""The receiver as systemd runs it: a real process, a real redis-server, signals and sd_notify."""

from __future__ import annotations

import signal
import socket
import threading

import tomli_w
from support.procs import wait_for

from scheduler.embedded_redis import dump_namespace
from scheduler.states import JobState


def manifest(jobs: list[dict]) -> str:
    return tomli_w.dumps({"schema_version": 1, "jobs": jobs})


JOBS = [{"name": "a", "model": "m", "seed": 1}, {"name": "b", "model": "m", "seed": 2},
        {"name": "c", "model": "m", "seed": 3}]


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


def test_sighup_reload_adds_updates_orphans_and_keeps_finished(procs, real_store, tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(manifest(JOBS))
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    procs.env["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
    receiver = procs.start("receiver", "--manifest", str(path))
    try:
        wait_for(lambda: "READY=1" in notify.messages, what="READY=1")
        assert real_store.jobs.counts()["pending"] == 3
        finished = real_store.jobs.resolve("a")
        real_store.redis.hset(real_store.keys.job(finished), "state", JobState.FINISHED.value)
        real_store.redis.zrem(real_store.keys.pending(real_store.jobs.get(finished).class_id), finished)
        real_store.redis.zrem(real_store.keys.state("pending"), finished)
        real_store.redis.zadd(real_store.keys.state("finished"), {finished: 1})

        changed = [dict(JOBS[0], priority=5), dict(JOBS[1], priority=7), {"name": "d", "model": "m", "seed": 4}]
        path.write_text(manifest(changed))
        receiver.send_signal(signal.SIGHUP)
        wait_for(lambda: real_store.jobs.counts()["orphaned"] == 1, what="reload applied")
        wait_for(lambda: notify.messages.count("READY=1") >= 2, what="READY=1 after the reload")
        assert any(m.startswith("RELOADING=1") for m in notify.messages)
        assert real_store.jobs.get(finished).state is JobState.FINISHED
        assert real_store.jobs.get(finished).priority == 5
        assert real_store.jobs.get(real_store.jobs.resolve("b")).priority == 7
        assert real_store.jobs.get(real_store.jobs.resolve("d")).state is JobState.PENDING
        orphan = real_store.jobs.get(real_store.jobs.resolve("c"))
        assert not orphan.in_manifest and orphan.state is JobState.PENDING

        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(10) == 0
        assert "STOPPING=1" in notify.messages
    finally:
        notify.close()


def test_broken_manifest_on_reload_keeps_the_old_load_serving(procs, real_store, real_redis, tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(manifest(JOBS))
    receiver = procs.start("receiver", "--manifest", str(path))
    wait_for(lambda: real_store.jobs.counts()["pending"] == 3, what="first load")
    # The reaper's liveness clock ticks on its own; everything the manifest put there must not change.
    before = {k: v for k, v in dump_namespace(real_redis).items() if not k.endswith(b":reaper_tick")}
    broken = JOBS + [{"name": "bad", "model": "m", "min_vram_gb": 3, "priority": "x"}]
    path.write_text(manifest(broken))
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: "rejected" in procs.log_of(receiver), what="the rejection in the log")
    log = procs.log_of(receiver)
    assert "min_vram_gib" in log and "priority" in log and "2 problems" in log
    assert receiver.poll() is None
    assert {k: v for k, v in dump_namespace(real_redis).items() if not k.endswith(b":reaper_tick")} == before
    path.write_text(manifest(JOBS + [{"name": "e", "model": "m", "seed": 5}]))
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: real_store.jobs.counts()["pending"] == 4, what="the fixed manifest loaded")


def test_concurrent_loads_of_one_manifest_equal_one_load(real_store, real_redis, redis_server):
    from scheduler.manifest import parse_manifest
    from support.stores import race_loads

    text = manifest([{"name": f"j{i}", "model": "m", "seed": i, "priority": i % 5} for i in range(200)])
    spec = parse_manifest(text, "m.toml")
    errors = race_loads(redis_server, [spec] * 4, rounds=20)
    assert errors == []
    after_race = dump_namespace(real_redis)
    real_redis.flushall()
    real_store.load(spec)
    single = dump_namespace(real_redis)
    strip = {k: v for k, v in after_race.items() if b":events" not in k}
    assert set(strip) == {k for k in single if b":events" not in k}
    counts = real_store.jobs.counts()
    assert counts["pending"] == 200
    pending = sum(real_redis.zcard(k) for k in real_redis.scan_iter(match=real_store.keys.pending("*")))
    assert pending == 200


def test_alternating_manifests_never_lose_or_duplicate_a_job(real_store, real_redis, redis_server):
    from scheduler.manifest import parse_manifest
    from support.stores import race_loads

    first = parse_manifest(manifest([{"name": f"j{i}", "model": "m", "seed": i} for i in range(100)]), "a.toml")
    second = parse_manifest(manifest([{"name": f"j{i}", "model": "m", "seed": i} for i in range(50, 150)]), "b.toml")

    assert race_loads(redis_server, [first, second, first, second], rounds=20) == []
    assert real_redis.zcard(real_store.keys.jobs) == 150
    states = sum(real_redis.zcard(real_store.keys.state(s.value)) for s in JobState)
    assert states == 150
    in_manifest = real_redis.scard(real_store.keys.in_manifest)
    assert in_manifest == 100 and real_redis.zcard(real_store.keys.orphaned) == 50
    pending = sum(real_redis.zcard(k) for k in real_redis.scan_iter(match=real_store.keys.pending("*")))
    assert pending == 100, "the pending index holds exactly the jobs of the last manifest applied"


def deep_hyper_manifest(levels: int = 1000, dotted: bool = False) -> str:
    """JOBS with a hyper table ``levels`` deep: inline (which tomllib parses recursively) or dotted."""
    deep = ("hyper." + ".".join(["a"] * levels) + " = 1" if dotted
            else "hyper = " + "{ a = " * levels + "1" + " }" * levels)
    return f'schema_version = 1\n[[jobs]]\nname = "a"\nmodel = "m"\nseed = 1\n{deep}\n'


def test_a_deeply_nested_manifest_on_reload_is_rejected_and_the_old_load_keeps_serving(procs, real_store, tmp_path):
    """Before, the loader's RecursionError killed the receiver (under Restart=on-failure, a crash loop)."""
    path = tmp_path / "m.toml"
    path.write_text(manifest(JOBS))
    receiver = procs.start("receiver", "--manifest", str(path))
    wait_for(lambda: real_store.jobs.counts()["pending"] == 3, what="first load")
    path.write_text(deep_hyper_manifest())
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: "rejected" in procs.log_of(receiver), what="the rejection in the log")
    assert receiver.poll() is None
    assert "ERROR" in procs.log_of(receiver) and "nested too deeply" in procs.log_of(receiver)
    assert real_store.jobs.counts()["pending"] == 3
    path.write_text(manifest(JOBS + [{"name": "e", "model": "m", "seed": 5}]))
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: real_store.jobs.counts()["pending"] == 4, what="the fixed manifest loaded")


def test_a_receiver_started_on_a_deeply_nested_manifest_stays_up_retrying(procs, real_store, tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(deep_hyper_manifest(dotted=True))
    receiver = procs.start("receiver", "--manifest", str(path))
    wait_for(lambda: procs.log_of(receiver).count("retrying the first load") >= 2, what="two rejected first loads")
    assert receiver.poll() is None and "ERROR" in procs.log_of(receiver)
    assert "dotted key" in procs.log_of(receiver)
    path.write_text(manifest(JOBS))
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: real_store.jobs.counts()["pending"] == 3, what="the fixed manifest loaded")


def test_an_unexpected_error_while_validating_is_logged_with_its_traceback_and_the_old_load_kept(
        store, tmp_path, monkeypatch, caplog):
    """The last line of defence: a validator bug a manifest triggers must cost one reload, not the daemon."""
    from scheduler import receiver as receiver_module
    from scheduler.receiver import Receiver

    path = tmp_path / "m.toml"
    path.write_text(manifest(JOBS))
    receiver = Receiver(store, str(path))
    assert receiver.load_once()
    before = dump_namespace(store.redis)

    def validator_bug(_path):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(receiver_module, "load_manifest", validator_bug)
    caplog.set_level("ERROR", logger="fleet.receiver")
    assert receiver.load_once() is False
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert str(path) in record.getMessage() and record.exc_info and record.exc_info[0] is RecursionError
    assert dump_namespace(store.redis) == before


def test_an_empty_manifest_on_reload_is_refused_at_error_and_a_smaller_one_loads_at_warning(
        procs, real_store, real_redis, tmp_path):
    """Before, an empty [[jobs]] list orphaned the whole fleet, logged at INFO."""
    path = tmp_path / "m.toml"
    path.write_text(manifest(JOBS))
    receiver = procs.start("receiver", "--manifest", str(path))
    wait_for(lambda: real_store.jobs.counts()["pending"] == 3, what="first load")
    before = {k: v for k, v in dump_namespace(real_redis).items() if not k.endswith(b":reaper_tick")}
    path.write_text("schema_version = 1\njobs = []\n")
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: "would orphan" in procs.log_of(receiver), what="the refusal in the log")
    [line] = [line for line in procs.log_of(receiver).splitlines() if "would orphan" in line]
    assert " ERROR " in line and "3 of the 3 jobs" in line
    assert receiver.poll() is None
    assert {k: v for k, v in dump_namespace(real_redis).items() if not k.endswith(b":reaper_tick")} == before
    path.write_text(manifest(JOBS[:2]))
    receiver.send_signal(signal.SIGHUP)
    wait_for(lambda: real_store.jobs.counts()["orphaned"] == 1, what="the smaller manifest loaded")
    wait_for(lambda: "orphaned: c" in procs.log_of(receiver), what="the orphan in the log")
    loaded = [line for line in procs.log_of(receiver).splitlines() if "loaded" in line or "orphaned" in line]
    assert all(" WARNING " in line for line in loaded[-3:]), loaded


def test_the_receiver_warns_once_at_start_when_redis_persists_nothing(real_store, real_redis, tmp_path, caplog):
    """Issue 18: fleet's state lives in Redis; one that keeps it only in memory loses every job's
    state when it restarts, and the operator must hear so in words they can act on."""
    from scheduler.receiver import Receiver

    receiver = Receiver(real_store, str(tmp_path / "m.toml"))
    saved = {**real_redis.config_get("appendonly"), **real_redis.config_get("save")}
    caplog.set_level("INFO", logger="fleet.receiver")
    try:
        for appendonly, save, expect in (("no", "", "persists nothing"), ("no", "3600 1", "only by snapshots"),
                                         ("yes", "", None)):
            caplog.clear()
            real_redis.config_set("appendonly", appendonly)
            real_redis.config_set("save", save)
            receiver.warn_if_not_persistent()
            warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
            if expect is None:
                assert warnings == []
            else:
                [line] = warnings
                assert expect in line and "appendonly yes" in line and "appendfsync everysec" in line
                assert "@" not in line  # the URL it names carries no credentials
    finally:
        real_redis.config_set("appendonly", saved["appendonly"])
        real_redis.config_set("save", saved["save"])
