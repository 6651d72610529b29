"""The dashboard's process: /metrics counts requests per route and the live data's age; `make dashboard` as
docs/dashboard.md shows it serves the app with gunicorn on DASHBOARD_PORT, quietly, and stops on SIGTERM."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

import httpx
import pytest
from support import ROOT
from support.doc_commands import doc_command
from support.env import local_env
from support.service import free_port

from dashboard.app import create_app, gunicorn_options
from dashboard.data import Data, Sources
from dashboard.metrics import MULTIPROC_VARIABLE, prepare_multiprocess
from stockpred_core.io.lake import Lake
from stockpred_core.processes import wait_for_http


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_per_route_and_the_data_age(tmp_path):
    app = create_app(Data(Sources(Lake(str(tmp_path / "lake")), None, None, "stockpred")))
    client = app.server.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/ticker").status_code == 200
    assert client.get("/no/such/page").status_code == 200  # Dash's index page: the router says there is no page
    # what the live poll sees: an events entry 30 s old, an online-store write 100 s old
    metrics = app.server.extensions["metrics"]
    metrics.observe_poll(f"{int(time.time() * 1000) - 30_000}-0", [repr(time.time() - 100), ""])
    text = client.get("/metrics").get_data(as_text=True)
    assert _sample(text, 'stockpred_dashboard_requests_total{route="/healthz",status="200"}') == 1.0
    assert _sample(text, 'stockpred_dashboard_requests_total{route="/ticker",status="200"}') == 1.0
    assert _sample(text, 'stockpred_dashboard_requests_total{route="other",status="200"}') == 1.0
    assert 'stockpred_dashboard_request_seconds_bucket{le="0.5",route="/ticker"}' in text
    assert 29 < _sample(text, "stockpred_dashboard_data_age_seconds") < 40


def test_several_workers_count_in_one_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(MULTIPROC_VARIABLE, str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"stale")
    assert prepare_multiprocess(1) is None  # one process: in memory
    assert prepare_multiprocess(2) == str(tmp_path / "metrics")
    assert not list((tmp_path / "metrics").iterdir())  # a previous run's values are gone
    options = gunicorn_options("0.0.0.0", 8050, 2, 4)
    assert options["bind"] == "0.0.0.0:8050" and options["workers"] == 2 and options["accesslog"] is None


@pytest.mark.slow
def test_make_dashboard_serves_it_with_gunicorn_on_the_given_port(tmp_path):
    port = free_port()
    env = {**os.environ, **local_env(tmp_path / "data"), "DASHBOARD_PORT": str(port)}
    env.pop("STOCKPRED_REDIS_URL", None)
    # the documented command; -o: the venv is installed already (by `make test`)
    make, *args = shlex.split(doc_command(r"^make dashboard$"))
    log = tmp_path / "dashboard.log"
    out = log.open("w")
    command = [make, "-o", ".venv/.installed-cpu", *args]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for_http(f"{base}/healthz", proc, timeout=60), log.read_text()
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "_dash-config" in page.text
        layout = httpx.get(f"{base}/_dash-layout", timeout=10)
        assert layout.status_code == 200 and "tick" in layout.text
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'stockpred_dashboard_requests_total{route="/",status="200"} 1.0' in metrics
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        out.close()
    output = log.read_text()
    assert f"stockpred dashboard on http://127.0.0.1:{port}/" in output
    assert "GET /" not in output and "Traceback" not in output  # no access log, no error
