"""`fleet dashboard`: its JSON API is the CLI's --json, its charts draw every point, its pages load
nothing from elsewhere; on a real redis-server with a real worker (the browser test is
tests/test_dashboard_browser.py)."""

from __future__ import annotations

import json
import re
import signal
import sys
import urllib.error
import urllib.request
from importlib import resources

import pytest
from support.procs import wait_for, write_profile
from test_worker_processes import write_manifest

from scheduler.client import Client
from scheduler.dashboard.app import Dashboard
from scheduler.dashboard.server import make_server, serve_in_thread, url_of
from scheduler.dashboard.svg import MAX_POINTS, chart

STEPS = 12
# A job that reports STEPS metric lines and a result, as a training script would (no braces:
# a command's braces are placeholders).
TRAIN = ("import json, os\n"
         "with open(os.environ['FLEET_METRICS'], 'a') as m:\n"
         f"    for step in range({STEPS}):\n"
         "        m.write(json.dumps(dict(step=step, loss=1.0 / (step + 1), total=%d)) + '\\n')\n"
         "print('trained')\n"
         "open(os.path.join(os.environ['FLEET_OUTPUT_DIR'], 'result.json'), 'w').write(json.dumps(dict(loss=0.08)))\n"
         % STEPS)


def get(base: str, path: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(base + path) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def fleet_run(procs, real_store, tmp_path):
    """One job run to the end by a real worker, one nobody can run; the dashboard on a free port."""
    jobs = [{"name": "curve", "model": "m", "command": [sys.executable, "-c", TRAIN]},
            {"name": "huge", "model": "m", "seed": 1, "require_cuda": True, "min_vram_gib": 200}]
    loaded = procs.run("load", write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs}))
    assert loaded.returncode == 0, loaded.stderr
    assert procs.worker("--burst", profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w").wait(60) == 0
    client = Client(store=real_store)
    server = make_server(Dashboard(client), "127.0.0.1", 0)
    serve_in_thread(server)
    yield url_of(server).rstrip("/"), client
    server.shutdown()
    server.server_close()


def test_the_api_returns_what_the_cli_prints_and_a_chart_draws_every_point(fleet_run, procs):
    base, client = fleet_run
    status, headers, body = get(base, "/api/status")
    doc = json.loads(body)
    cli = json.loads(procs.run("status", "--json").stdout)
    assert status == 200 and doc["jobs"] == cli["jobs"] and doc["unrunnable"] == cli["unrunnable"]
    assert [w["name"] for w in doc["workers"]] == ["w"]
    page = json.loads(get(base, "/api/jobs?limit=1")[2])
    assert page["more"] is True and len(page["jobs"]) == 1
    rows = json.loads(get(base, "/api/jobs?state=pending")[2])["jobs"]
    assert [(r["name"], r["reason"]) for r in rows] == [("huge", "No live worker")]  # the burst worker left
    job = json.loads(get(base, "/api/jobs/curve")[2])
    assert job == client.job("curve")
    assert job["state"] == "finished" and job["attempts_detail"][0]["outcome"] == "finished"
    assert json.loads(get(base, "/api/jobs/curve/log")[2])["lines"] == ["trained"]
    assert len(json.loads(get(base, "/api/jobs/curve/metrics")[2])) == STEPS
    status, headers, svg = get(base, "/api/jobs/curve/chart.svg?metric=loss")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml"
    assert svg.decode().count('<circle class="pt"') == STEPS and f'data-points="{STEPS}"' in svg.decode()
    compare = json.loads(get(base, "/api/compare?jobs=curve")[2])
    assert compare == client.compare(["curve"]) and compare[0]["loss"] == 0.08
    overlay = get(base, "/api/chart.svg?jobs=curve,huge&metric=loss")[2].decode()
    assert overlay.count('class="series"') == 1  # huge reported nothing: no empty line


def test_errors_are_one_line_json_and_pages_name_nothing_outside(fleet_run):
    base, _ = fleet_run
    status, _, body = get(base, "/api/jobs/nope")
    assert status == 404 and "nope" in json.loads(body)["error"] and "Traceback" not in body.decode()
    status, _, body = get(base, "/api/jobs?limit=lots")
    assert status == 400 and json.loads(body)["error"] == "limit='lots': not a whole number"
    assert get(base, "/../../etc/passwd")[0] == 404
    for path in ("/", "/jobs/curve", "/compare", "/static/app.js", "/static/style.css"):
        status, headers, body = get(base, path)
        assert status == 200, path
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert not re.search(rb"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", body), (path, "fetches from elsewhere")
    shipped = resources.files("scheduler.dashboard").joinpath("pages")
    assert {p.name for p in shipped.iterdir()} >= {"fleet.html", "job.html", "compare.html", "app.js", "style.css"}


def test_a_chart_escapes_names_and_thins_long_series_but_counts_them():
    svg = chart({'<script>alert("x")</script>': [(float(i), float(i % 7)) for i in range(5000)]}, "loss")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="pt"') == MAX_POINTS and 'data-points="5000"' in svg
    assert "no loss against step reported yet" in chart({"a": []}, "loss")


def test_fleet_dashboard_serves_until_interrupted_and_a_taken_port_is_one_line(procs, tmp_path):
    server = procs.start("dashboard", "--port", "0")
    line = wait_for(lambda: open(server.log_path).read().strip(), what="the dashboard's URL")
    url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
    assert json.loads(urllib.request.urlopen(url + "api/status").read())["jobs"] is not None
    port = url.rsplit(":", 1)[1].strip("/")
    taken = procs.run("dashboard", "--port", port)
    assert taken.returncode == 2 and taken.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in taken.stderr
    server.send_signal(signal.SIGINT)
    assert server.wait(10) == 0


def test_a_bug_behind_a_route_is_a_500_with_one_line_not_a_dropped_connection():
    class Broken:  # a Client whose read hits a bug, not a fleet error
        def status(self):
            raise KeyError("oops")

    server = make_server(Dashboard(Broken()), "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        status, _, body = get(url_of(server).rstrip("/"), "/api/status")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 500 and json.loads(body) == {"error": "internal error (KeyError); the dashboard's log has it"}
