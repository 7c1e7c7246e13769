"""Tests' name for the embedded redis-server helper (which lives in scheduler for the demo and bench)."""

from scheduler.embedded_redis import RedisServer, dump_namespace, free_port  # noqa: F401
