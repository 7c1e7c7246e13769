"""Which attempts' output dirs leave the runs dir for the archive, and moving them there safely.

Nothing is deleted: an archived attempt's outputs move (one ``rename``, same
filesystem) to ``<runs_dir>/archive/<UTC stamp>/<name>-<id>/attempt-<n>`` and its
attempt record says where, so ``fleet verify`` and ``fleet job`` still find them.
The record is written before the move: a prune killed in between leaves a record
pointing at a path that does not exist yet, and the next prune finishes that move.

Output dirs live on the host that ran the attempt, so a prune only touches dirs
under its own ``--runs-dir`` that exist on this host; run it on every worker host
(or once, on shared storage).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from .errors import UsageError
from .runs_layout import archive_dir, archived_path, is_archived_attempt_dir, is_attempt_dir
from .store import Store

DAY_S = 86400.0
PAGE = 1000


@dataclass(frozen=True)
class Move:
    job_id: str
    name: str
    attempt: int
    source: str
    target: str
    resumed: bool = False  # finishing a move an earlier, interrupted prune recorded

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Kept:
    """An attempt old enough to go that stays, and why: what an operator would ask."""

    job_id: str
    name: str
    attempt: int
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PrunePlan:
    archive_dir: str
    moves: list[Move]
    kept: list[Kept]
    failed: list[Kept]  # moves that were tried and did not happen (empty for a dry run)


def select(attempts: list[dict], keep: int, cutoff: float,
           include_last: bool) -> tuple[list[dict], list[tuple[dict, str]]]:
    """One job's attempts to archive, and those old enough that stay, with the reason.

    The newest ``keep`` attempts with outputs stay, whatever their age; so does the
    newest finished one (the job's result) unless ``include_last``. Running and
    already archived attempts are never chosen.
    """
    ended = sorted((a for a in attempts if a.get("output_dir") and a.get("ended_at") is not None),
                   key=lambda a: a["attempt"])
    recent = {a["attempt"] for a in ended[len(ended) - keep:]} if keep else set()
    finished = [a["attempt"] for a in ended if a.get("outcome") == "finished"]
    result = finished[-1] if finished and not include_last else None
    chosen, kept = [], []
    for a in ended:
        if a.get("archived_to") or a["attempt"] in recent or a["ended_at"] >= cutoff:
            continue
        if a["attempt"] == result:
            kept.append((a, "the job's successful attempt (--include-last archives it too)"))
        else:
            chosen.append(a)
    return chosen, kept


class Pruner:
    def __init__(self, store: Store, runs_dir: str, now: float | None = None):
        self.records = store.archive  # the attempt records: read, and marked before each move
        self.runs_dir = os.path.realpath(runs_dir)
        if not os.path.isdir(self.runs_dir):
            raise UsageError(f"--runs-dir {runs_dir}: no such directory on this host; pass the dir the "
                             f"workers here write to (their --runs-dir)")
        self.now = time.time() if now is None else now
        self.archive_dir = archive_dir(self.runs_dir, self.now)

    def plan(self, keep: int, older_than_days: float, include_last: bool) -> PrunePlan:
        cutoff = self.now - older_than_days * DAY_S
        plan = PrunePlan(self.archive_dir, [], [], [])
        for job_id, name, attempts in self.records.jobs_with_attempts(PAGE):
            for a in attempts:  # a move an interrupted prune recorded but never made
                target = a.get("archived_to")
                if target and self._here(a.get("output_dir") or "") and self._archive_path(target) \
                        and not os.path.lexists(target):
                    plan.moves.append(Move(job_id, name, a["attempt"], a["output_dir"], target, True))
            chosen, kept = select(attempts, keep, cutoff, include_last)
            plan.kept += [Kept(job_id, name, a["attempt"], why) for a, why in kept]
            for a in chosen:
                problem = self._refuse(a)
                if problem:
                    plan.kept.append(Kept(job_id, name, a["attempt"], problem))
                else:
                    plan.moves.append(Move(job_id, name, a["attempt"], a["output_dir"],
                                           archived_path(self.runs_dir, self.archive_dir, a["output_dir"])))
        return plan

    def apply(self, plan: PrunePlan) -> PrunePlan:
        """Make the plan's moves; each one recorded first, taken back if the move fails."""
        done = []
        for move in plan.moves:
            failure, other = self._move(move)
            if failure:
                plan.failed.append(Kept(move.job_id, move.name, move.attempt, failure))
            elif other:
                plan.kept.append(Kept(move.job_id, move.name, move.attempt, other))
            else:
                done.append(move)
        plan.moves = done
        return plan

    def _move(self, move: Move) -> tuple[str | None, str | None]:
        """(why the move failed, why it was not ours to make); both None once moved."""
        racing = "archived by another prune running at the same time"
        if not move.resumed:
            if os.path.lexists(move.target):
                return None, racing
            marked = self.records.mark(move.job_id, move.attempt, move.source, move.target, self.now)
            if marked != "ok":
                return None, {"gone": "its attempt record is gone", "running": "it is running again",
                              "moved": "its record changed meanwhile", "other": racing}[marked]
        try:
            os.makedirs(os.path.dirname(move.target), mode=0o700, exist_ok=True)
            os.rename(move.source, move.target)
        except OSError as err:
            if not os.path.lexists(move.source) and os.path.isdir(move.target):
                return None, racing
            if os.path.isdir(move.source) and not os.path.lexists(move.target):
                self.records.unmark(move.job_id, move.attempt, move.source, move.target, self.now)
            return f"cannot move {move.source} to {move.target}: {err.strerror}; it stays where it was", None
        return None, None

    def _here(self, path: str) -> bool:
        return _real_dir(path) and self._under_runs(path)

    def _under_runs(self, path: str) -> bool:
        return is_attempt_dir(self.runs_dir, path)

    def _archive_path(self, path: str) -> bool:
        return is_archived_attempt_dir(self.runs_dir, path)

    def _refuse(self, attempt: dict) -> str | None:
        """Why this attempt's dir cannot be moved from this host, or None."""
        where = attempt.get("host") or "another host"
        path = attempt["output_dir"]
        if not self._under_runs(path):
            return f"output dir {path} is not an attempt dir under --runs-dir {self.runs_dir} (ran on {where})"
        if not _real_dir(path):
            return f"output dir not on this host (ran on {where}); prune there"
        return None


def _real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)
