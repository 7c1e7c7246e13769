"""A monitored Redis on loopback for failover tests: a master, a replica and one sentinel.

Each is a real redis-server process on a free 127.0.0.1 port (the sentinel runs
redis-server in sentinel mode), stopped by :meth:`SentinelSet.stop`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import redis

from scheduler.embedded_redis import RedisServer, free_port, redis_server_binary

from .procs import wait_for

SERVICE = "fleetmaster"


class SentinelSet:
    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica = self.proc = None
        self.dir = tempfile.mkdtemp(prefix="fleet-sentinel-")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.port = free_port()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as fh:
            fh.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                     f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1\n"
                     f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 10000\n")
        self.proc = subprocess.Popen([redis_server_binary(), conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.sentinel = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        wait_for(lambda: self.sentinel.ping(), 20, what="the sentinel to start", tolerate=(redis.RedisError,))
        wait_for(lambda: self.replica.client().info("replication")["master_link_status"] == "up", 20,
                 what="the replica to sync", tolerate=(redis.RedisError,))
        wait_for(lambda: int(self.sentinel.sentinel_master(SERVICE)["num-slaves"]) >= 1, 20,
                 what="the sentinel to see the replica", tolerate=(redis.RedisError,))

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{SERVICE}"

    def master_port(self) -> int:
        return int(self.sentinel.sentinel_get_master_addr_by_name(SERVICE)[1])

    def failover(self) -> None:
        """SENTINEL FAILOVER: the replica becomes master, the old master its replica."""
        before = self.master_port()
        self.sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        wait_for(lambda: self.master_port() != before, 30, what="the failover", tolerate=(redis.RedisError,))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.replica is not None:
            self.replica.stop()
        self.master.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "SentinelSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
