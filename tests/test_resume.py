"""Which earlier attempt a new one resumes from, and where its output dir is (worker/attempt.py
resume_from): however the earlier attempt ended, and whichever host ran it."""

from __future__ import annotations

import os

from scheduler.runs_layout import output_dir
from worker.attempt import Resume, WorkerPlace, previous_attempt, resume_from

PLACE = WorkerPlace(runs_dir="", host_name="gpu1", worker_name="gpu1", gpus=())


def test_a_lost_attempt_on_this_host_is_found_where_this_host_put_it(tmp_path):
    place = WorkerPlace(str(tmp_path), "gpu1", "gpu1", ())
    lost = {"attempt": 1, "host": "gpu1", "outcome": "lost"}  # the reaper recorded no output dir
    assert resume_from(lost, place, "fit", "ab" * 8).dir == ""  # nothing there yet: nothing to resume
    os.makedirs(output_dir(str(tmp_path), "fit", "ab" * 8, 1))
    found = resume_from(lost, place, "fit", "ab" * 8)
    assert (found.attempt, found.dir, found.host) == (1, output_dir(str(tmp_path), "fit", "ab" * 8, 1), "")


def test_another_hosts_attempt_names_its_host_and_its_dir_only_where_reachable(tmp_path):
    shared = tmp_path / "shared" / "attempt-2"
    shared.mkdir(parents=True)
    elsewhere = {"attempt": 2, "host": "gpu7", "outcome": "timeout", "output_dir": str(shared)}
    assert resume_from(elsewhere, PLACE, "fit", "ab" * 8) == Resume(2, str(shared), "gpu7")
    unreachable = dict(elsewhere, output_dir="/nowhere/attempt-2")
    assert resume_from(unreachable, PLACE, "fit", "ab" * 8) == Resume(2, "", "gpu7")
    archived = dict(elsewhere, output_dir="/nowhere", archived_to=str(shared))  # `fleet prune` moved it
    assert resume_from(archived, PLACE, "fit", "ab" * 8).dir == str(shared)


def test_only_the_attempt_just_before_counts_and_a_first_attempt_resumes_nothing():
    assert previous_attempt(b'{"attempt": 2, "host": "h"}', 3) == {"attempt": 2, "host": "h"}
    assert previous_attempt(b'{"attempt": 1}', 3) is None  # not the one before: a damaged list
    assert previous_attempt(b"not json", 2) is None and previous_attempt(None, 2) is None
    assert previous_attempt(b'{"attempt": 0}', 1) is None and resume_from(None, PLACE, "fit", "x") is None
