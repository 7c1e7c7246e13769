"""The preference board: which idle worker is better placed for a class, at a cost that does not
grow with the fleet.

A deferral (worker/preference.py) needs to know whether some *other idle* worker is better
placed for a class. Reading every worker's record for that made each idle worker's claim cost
one read per worker ever seen (issue 18: quadratic in the fleet). Instead each idle worker
offers its placement rank per class into that class's board (a zset), and says it is idle in
one zset of timestamps; a claim then asks, per class, only for the entries ranked above its
own (preference.lua). Offers are rewritten only when something changed, so an idle worker's
steady cost is one script call per claim attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..keys import Keys
from .scripts import Scripts

# An idle worker republishes "idle" each time it looks for work: on events, and at least every
# IDLE_LOOK_S (worker/rq_worker.py) otherwise; an entry older than twice that and a margin is a
# worker that went busy or quiet.
IDLE_FRESH_S = 25.0
# A board entry whose worker has not said idle for this long is dropped by whoever meets it;
# the worker offers again when it is next idle.
FORGET_AFTER_S = 60.0
# Boards of classes nobody offers for any more (the manifest moved on) expire on their own.
BOARD_TTL_S = 3600
# An idle worker re-offers at least this often, so its boards never expire under it.
REOFFER_EVERY_S = BOARD_TTL_S / 4


@dataclass(frozen=True)
class BoardAnswer:
    """What the board said to one worker: the classes a better-placed idle worker could take,
    and how many other workers are idle (those that may not have offered for a class they have
    only just seen: see worker/preference.py Deferrals)."""

    better_elsewhere: frozenset[str]
    others_idle: int


NOBODY_ELSE = BoardAnswer(frozenset(), 0)


class PreferenceBoard:
    """One worker's view of the board: its offers and its questions, one script call each time."""

    def __init__(self, redis, keys: Keys, worker_name: str):
        self.keys = keys
        self.worker_name = worker_name
        self._script = Scripts(redis, ("preference",)).preference
        self._offered: tuple[frozenset, float] = (frozenset(), -1.0)  # (what was offered, when)

    def ask(self, ranks: dict[str, float], reoffer: bool = False, now: float | None = None) -> BoardAnswer:
        """The class ids (of ``ranks``'s) that a better-placed idle worker could take, and how
        many other workers are idle; ``ranks`` holds this worker's rank per class it could run.
        Offers are (re)written with the question when they changed, when ``reoffer`` (the worker
        was busy meanwhile and readers may have dropped its entries), or every REOFFER_EVERY_S."""
        if not ranks:
            return NOBODY_ELSE
        now = time.time() if now is None else now
        offer = frozenset(ranks.items())
        last, at = self._offered
        write = reoffer or offer != last or now - at >= REOFFER_EVERY_S
        args: list = [self.worker_name, repr(now), IDLE_FRESH_S, FORGET_AFTER_S, self.keys.prefer_prefix,
                      "1" if write else "0", BOARD_TTL_S]
        for class_id, rank in ranks.items():
            args += [class_id, repr(rank)]
        reply = self._script(keys=[self.keys.idle], args=args)
        if write:
            self._offered = (offer, now)
        others, *better = reply
        names = frozenset(b.decode() if isinstance(b, bytes) else b for b in better)
        return BoardAnswer(names, int(others))
