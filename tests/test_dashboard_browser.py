"""The dashboard in a real browser (headless Chromium, tests/support/browser.py): the fleet page
sees a job turn from running to finished without a reload, and the job's page draws its chart
with as many points as the job reported. Skipped, saying why, where Chromium is not installed
(scripts/setup.sh installs Debian's `chromium` where it can)."""

from __future__ import annotations

import sys

import pytest
from support.browser import Browser, find_chromium
from support.procs import wait_for, write_profile
from test_worker_processes import write_manifest

from scheduler.client import Client
from scheduler.dashboard.app import Dashboard
from scheduler.dashboard.server import make_server, serve_in_thread, url_of

CHROMIUM = find_chromium()
STEPS = 30
# Reports a metric line every 0.1 s for STEPS steps: running for ~3 s, long enough to be seen.
TRAIN = ("import json, os, time\n"
         "with open(os.environ['FLEET_METRICS'], 'a', buffering=1) as m:\n"
         f"    for step in range({STEPS}):\n"
         "        m.write(json.dumps(dict(step=step, loss=2.0 / (step + 1), total=%d)) + '\\n')\n"
         "        time.sleep(0.1)\n" % STEPS)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/setup.sh installs Debian's chromium "
                                             "with apt where it runs as root)")
def test_the_fleet_page_follows_a_job_to_finished_and_its_page_draws_every_point(procs, real_store, tmp_path):
    jobs = [{"name": "curve", "model": "m", "command": [sys.executable, "-c", TRAIN]}]
    procs.run("load", write_manifest(tmp_path / "m.toml", {"schema_version": 1, "jobs": jobs}))
    server = make_server(Dashboard(Client(store=real_store)), "127.0.0.1", 0)
    serve_in_thread(server)
    browser = Browser(CHROMIUM)
    try:
        base = url_of(server)
        browser.goto(base)
        browser.wait_for("document.querySelector('[data-job=\"curve\"] .state')?.textContent === 'pending'",
                         what="the pending job listed")
        browser.evaluate("window.fleetMarker = 'no reload'")  # gone if the page reloads
        procs.worker(profile=write_profile(str(tmp_path / "h.toml"), "box", 2, 8), name="w")
        browser.wait_for("document.querySelector('[data-job=\"curve\"] .state')?.textContent === 'running'",
                         what="the job shown running")
        wait_for(lambda: len(Client(store=real_store).metrics("curve")) >= 3, what="a few steps reported")
        browser.screenshot(str(tmp_path / "fleet-running.png"))
        browser.wait_for("document.querySelector('[data-job=\"curve\"] .state')?.textContent === 'finished'",
                         what="the job shown finished")
        assert browser.evaluate("window.fleetMarker") == "no reload"
        assert browser.evaluate("document.querySelector('[data-worker=\"w\"]').textContent").startswith("w")
        browser.goto(f"{base}jobs/curve")
        points = browser.wait_for("document.querySelectorAll('#chart circle.pt').length", what="the chart drawn")
        assert points == STEPS
        assert browser.evaluate("document.querySelector('#state').textContent") == "finished"
        assert browser.evaluate("document.querySelector('#metric').value") == "loss"
        browser.screenshot(str(tmp_path / "job-page.png"))
        print(f"screenshots: {tmp_path / 'fleet-running.png'}, {tmp_path / 'job-page.png'}")
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
