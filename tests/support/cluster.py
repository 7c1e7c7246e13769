"""A 3-master Redis Cluster on loopback: real redis-server processes in cluster mode, each on a
free 127.0.0.1 port, slots split in three, stopped by :meth:`Cluster.stop`."""

from __future__ import annotations

from redis.crc import key_slot

from scheduler.embedded_redis import RedisServer, free_port

from .procs import wait_for

SLOTS = 16384


def namespace_slot(namespace: str) -> int:
    return key_slot(("{" + namespace + "}").encode())


class Cluster:
    def __init__(self, masters: int = 3) -> None:
        # The bus port given, not port + 10000 (which a free port above 55535 would overflow).
        self.bus_ports = [free_port() for _ in range(masters)]
        self.nodes: list[RedisServer] = []
        try:
            for bus in self.bus_ports:
                self.nodes.append(RedisServer(extra_args=("--cluster-enabled", "yes", "--cluster-config-file",
                                                          "nodes.conf", "--cluster-node-timeout", "2000",
                                                          "--cluster-port", str(bus))))
            self._join(masters)
        except BaseException:
            self.stop()
            raise

    def _join(self, masters: int) -> None:
        step = SLOTS // masters
        for i, node in enumerate(self.nodes):
            last = SLOTS - 1 if i == masters - 1 else (i + 1) * step - 1
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, last)
        for node in self.nodes[1:]:
            node.client().execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port, self.bus_ports[0])
        wait_for(lambda: all(n.client().execute_command("CLUSTER", "INFO").decode().startswith("cluster_state:ok")
                             for n in self.nodes), 20, what="the cluster")

    def owner(self, slot: int) -> RedisServer:
        for node in self.nodes:
            if self._serves(node, slot):
                return node
        raise AssertionError(f"no node serves slot {slot}")

    @staticmethod
    def _serves(node: RedisServer, slot: int) -> bool:
        me = node.client().execute_command("CLUSTER", "MYID").decode()
        for start, end, master, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return master[2].decode() == me
        return False

    def move_slot(self, slot: int, dst: RedisServer) -> None:
        """Reshard one slot to ``dst``, keys and all, as `redis-cli --cluster reshard` does."""
        src = self.owner(slot)
        src_id = src.client().execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.client().execute_command("CLUSTER", "MYID").decode()
        dst.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.client().execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
        for node in self.nodes:
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        wait_for(lambda: self._serves(dst, slot), 20, what="the slot to move")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
