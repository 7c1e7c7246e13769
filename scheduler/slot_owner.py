"""Redis Cluster: connections that follow the one node owning the namespace's slot.

Every key of a namespace, rq's included, shares one hash tag (scheduler/keys.py), so the
whole namespace lives in one slot, on one node. fleet therefore needs no cluster client
(rq has none): a plain client whose connections go to that node is enough, and keeps rq's
pipelines and transactions working as on a single Redis. Pointed at any node (a
``redis://`` URL of one), a connection that meets ``MOVED`` remembers the owner it names
(shared by every connection of the client), drops itself and raises a ConnectionError,
which redis-py's retry and fleet's own backoff paths answer by reconnecting, to the owner
this time. A reshard moving the slot later is followed the same way. While the slot is
being migrated (``ASK``, ``TRYAGAIN``, a script meeting a key already moved), commands are
refused as "try again" until the move is done: fleet's scripts touch many keys of the
slot, which a half-moved slot splits over two nodes. A non-cluster Redis never answers
MOVED, so this costs it nothing.
"""

from __future__ import annotations

from redis.connection import Connection, SSLConnection
from redis.exceptions import AskError, ClusterDownError, ConnectionError, MovedError, ResponseError, TryAgainError

# What Redis answers a script touching a key of a slot it does not serve (now), by its text.
NON_LOCAL_KEY = "Script attempted to access a non local key in a cluster node"


class SlotMovedError(ConnectionError):
    """The namespace's slot lives elsewhere now (or is moving): reconnect and try again."""


def slot_retry():
    """The client's retry: only of a command refused because the slot is elsewhere or moving
    (it was not executed), a few times a moment apart; any other error is the caller's, as
    without a cluster."""
    from redis.backoff import ConstantBackoff
    from redis.retry import Retry

    return Retry(ConstantBackoff(0.05), 5, supported_errors=(SlotMovedError,))


class _FollowsSlot:
    def __init__(self, *args, slot_owner: dict | None = None, **kwargs):
        """``slot_owner``: shared by all connections of one client; {"addr": (host, port)} once a
        MOVED named the node that owns the namespace's slot."""
        super().__init__(*args, **kwargs)
        self._seed = (self.host, self.port)  # type: ignore[attr-defined]
        self._slot_owner = slot_owner if slot_owner is not None else {}

    def _connect(self):
        self.host, self.port = self._slot_owner.get("addr", self._seed)
        return super()._connect()  # type: ignore[misc]

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except MovedError as err:
            self._slot_owner["addr"] = (err.host, err.port)
            self.disconnect()  # type: ignore[attr-defined]
            raise SlotMovedError(f"the namespace's cluster slot {err.slot_id} is served by {err.host}:{err.port}; "
                                 f"reconnecting there") from None
        except (AskError, TryAgainError, ClusterDownError) as err:
            raise SlotMovedError(f"the namespace's cluster slot is moving or the cluster is down ({err}); "
                                 f"retrying") from None
        except ResponseError as err:
            if NON_LOCAL_KEY in str(err):
                raise SlotMovedError("the namespace's cluster slot is moving; retrying") from None
            raise


class SlotFollowingConnection(_FollowsSlot, Connection):
    """A TCP connection to whichever node owns the namespace's slot."""


class SlotFollowingSSLConnection(_FollowsSlot, SSLConnection):
    """The same over TLS (rediss://)."""
