"""`fleet history` from the store: every attempt of a window, however it ended (the reaper's lost
ones too), its accounting, and the window's spelling."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from test_claims import HOST, job, load

from scheduler.client import Client
from scheduler.errors import UsageError
from scheduler.history import parse_when, summary, window
from scheduler.states import Outcome
from scheduler.store.claims import Claims
from scheduler.store.history import AttemptSeen


def test_every_attempt_of_the_window_is_listed_however_it_ended(store):
    _, classes = load(store, job("j", min_cores=4, retry_delay_s=0) + job("k"))
    claims = Claims(store.redis, store.keys, lease_s=2)
    now = time.time()
    lost = claims.claim("dead", HOST, classes, now=now - 10)
    claims.reap(now=now - 9)
    claims.reap(now=now - 7)  # the lease ran out: lost, pending again
    again = claims.claim("alive", HOST, classes, now=now - 5)
    assert again.job_id == lost.job_id and again.attempt == 2
    claims.complete(again.job_id, again.attempt, "alive", Outcome.FINISHED, exit_code=0)
    running = claims.claim("alive", HOST, classes)
    rows = Client(store=store).history()
    assert [(r["name"], r["attempt"], r["outcome"], r["worker"]) for r in rows] == \
        [("j", 1, "lost", "dead"), ("j", 2, "finished", "alive"), ("k", 1, "running", "alive")]
    assert rows[1]["exit_code"] == 0 and rows[2]["ended_at"] is None and running.job_id == rows[2]["job_id"]
    assert [r["attempt"] for r in Client(store=store).history(state="lost,running")] == [1, 1]
    with pytest.raises(UsageError, match="outcome is one of"):
        Client(store=store).history(state="done")
    totals = Client(store=store).history_summary()
    (host,) = totals["hosts"]
    assert host["attempts"] == 3 and host["core_hours"] >= 4 * (3 + 5) / 3600 * 0.99  # j reserved 4 cores


def test_accounting_counts_only_what_lies_inside_the_window():
    seen = [AttemptSeen("a", "a", "cnn", {"attempt": 1, "host": "h", "gpu": "GPU-1,GPU-2", "cores": 8,
                                          "started_at": 0.0, "ended_at": 7200.0}),
            AttemptSeen("b", "b", "cnn", {"attempt": 1, "host": "h", "gpu": "", "cores": 0, "started_at": 3600.0})]
    doc = summary(seen, since=3600.0, until=10800.0, now=7200.0)
    (host,) = doc["hosts"]
    assert (host["hours"], host["gpu_hours"], host["core_hours"]) == (2.0, 2.0, 9.0)  # b: 1 core at least


def test_a_window_is_an_age_or_a_local_date_and_mistakes_say_how_to_write_it():
    now = 1_000_000.0
    assert parse_when("2h", "--since", now) == now - 7200 and parse_when("1.5d", "--since", now) == now - 129600
    assert parse_when("2026-12-01", "--since", now) == datetime(2026, 12, 1).timestamp()
    assert parse_when("2026-12-01T08:30", "--until", now) == datetime(2026, 12, 1, 8, 30).timestamp()
    assert window(None, None, now) == (now - 86400, now)
    with pytest.raises(UsageError, match="--until 'soon': give an age"):
        window(None, "soon", now)
    with pytest.raises(UsageError, match="--since is after --until"):
        window("1h", "2h", now)
