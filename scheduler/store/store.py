"""The store facade: one Redis client, one namespace's keys, the scripts and queries over them."""

from __future__ import annotations

from ..errors import StoreError
from ..keys import Keys
from ..manifest.model import Manifest
from ..settings import Settings
from .errors import redis_errors
from .loading import LoadPlan, apply_manifest
from .queries import JobQueries

LOAD_TIMEOUT_S = 600.0


class Store:
    def __init__(self, redis, keys: Keys, settings: Settings | None = None, connected: bool = False):
        self.redis = redis
        self._connected = connected  # built by connect(): settings can open more connections
        self.keys = keys
        self.settings = settings or Settings(namespace=keys.namespace)
        self.jobs = JobQueries(redis, keys)

    @classmethod
    def connect(cls, settings: Settings) -> "Store":
        """Connect and PING, so an unreachable Redis is one clear error up front."""
        client = settings.connect()
        with redis_errors(settings):
            client.ping()
        return cls(client, Keys(settings.namespace), settings, connected=True)

    def errors(self):
        """Context manager turning redis-py failures into StoreError for this store's URL."""
        return redis_errors(self.settings)

    def load(self, manifest: Manifest, dry_run: bool = False, allow_orphaning: bool = False) -> LoadPlan:
        """Apply on a connection of its own with a long read timeout: the one atomic script for a
        big manifest (100,000 jobs) runs for seconds, longer than an ordinary command may take.
        A load that would orphan most of the fleet raises ManifestError unless ``allow_orphaning``."""
        client = self.redis
        if self._connected:
            client = self.settings.connect(socket_timeout_s=LOAD_TIMEOUT_S)
        try:
            with self.errors():
                return apply_manifest(client, self.keys, manifest, dry_run=dry_run, allow_orphaning=allow_orphaning)
        finally:
            if client is not self.redis:
                client.close()


__all__ = ["Store", "StoreError"]
