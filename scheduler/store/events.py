"""Waiting on the events stream: how an idle worker learns that work may have become claimable.

Workers block on the stream (XREAD BLOCK) rather than poll, so new work starts within
a fraction of a second and an idle fleet costs Redis nothing.
"""

from __future__ import annotations

from ..keys import Keys


class EventWaiter:
    """A cursor into the events stream. The cursor is taken *before* a claim attempt
    (:meth:`mark`), so an event that arrives between a fruitless claim and the wait
    still wakes the wait."""

    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self.last = "$"  # not marked yet

    def mark(self) -> None:
        """Remember the stream's end now."""
        self.set_mark(self.redis.xrevrange(self.keys.events, count=1))

    def queue_mark(self, pipe) -> None:
        """Add the read of the stream's end to ``pipe``, so a caller can share its round trip
        (:meth:`Store.claim_view` reads it with the hosts and classes)."""
        pipe.xrevrange(self.keys.events, count=1)

    def set_mark(self, reply: list) -> None:
        """The cursor from the reply of :meth:`queue_mark`'s read."""
        self.last = reply[0][0].decode() if reply else "0-0"

    def wait(self, timeout_s: float) -> bool:
        """Block until an event after the cursor (or the timeout); True if woken by one."""
        if self.last == "$":
            self.mark()
        reply = self.redis.xread({self.keys.events: self.last}, count=100, block=max(1, int(timeout_s * 1000)))
        if not reply:
            return False
        self.last = reply[0][1][-1][0].decode()
        return True
