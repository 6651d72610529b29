"""The dashboard's Prometheus metrics on /metrics: requests and their latency per route (a page, a Dash callback by
its output, a Dash endpoint), and the age of the newest data the last live poll saw.

One process (`--workers 1`, the default, threads serving the requests) counts in memory; with several gunicorn
workers `stockpred-dashboard` sets PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported, each worker
writes its values there and /metrics sums them (prometheus_client's multiprocess mode). prometheus_client is
imported when an app is built, never at this module's import, for that reason."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import flask

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DASH_ENDPOINTS = ("/_dash-layout", "/_dash-dependencies", "/_reload-hash", "/_favicon.ico")


class Metrics:
    def __init__(self, pages: tuple[str, ...]) -> None:
        import prometheus_client as prom

        self.pages = set(pages)
        self.multiprocess = bool(os.environ.get(MULTIPROC_VARIABLE))
        # in multiprocess mode the values live in files, collected at each scrape; else in this app's own registry
        # (several apps in one process, as in the tests, do not collide)
        self.registry = None if self.multiprocess else prom.CollectorRegistry()
        self.requests = prom.Counter(
            "stockpred_dashboard_requests",
            "Requests answered, per route (a page path, `callback:<output>`, a Dash endpoint) and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "stockpred_dashboard_request_seconds",
            "Time to answer a request, per route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.data_age = prom.Gauge(
            "stockpred_dashboard_data_age_seconds",
            "Age of the newest live data (events stream entry, online store write) at the last poll",
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )

    def route(self, request: flask.Request) -> str:
        """A bounded label: the app's pages, its callbacks and Dash's endpoints; everything else is `other`."""
        path = request.path
        if path in self.pages or path in ("/healthz", "/metrics", "/login", "/logout") or path in DASH_ENDPOINTS:
            return path
        if path == "/_dash-update-component":
            body = request.get_json(silent=True) or {}
            return f"callback:{body.get('output', '?')}"
        if path.startswith("/_dash-component-suites/") or path.startswith("/assets/"):
            return "static"
        return "other"

    def install(self, server: flask.Flask) -> None:
        """Time every request, and answer /metrics; the app's Flask server holds them as extensions["metrics"]."""
        import prometheus_client as prom

        server.extensions["metrics"] = self

        @server.before_request
        def _start() -> None:
            flask.g.metrics_start = time.perf_counter()

        @server.after_request
        def _observe(response: flask.Response) -> flask.Response:
            start = flask.g.pop("metrics_start", None)
            if start is not None:
                route = self.route(flask.request)
                self.latency.labels(route).observe(time.perf_counter() - start)
                self.requests.labels(route, str(response.status_code)).inc()
            return response

        def metrics() -> flask.Response:
            registry = self.registry
            if registry is None:
                from prometheus_client import multiprocess

                registry = prom.CollectorRegistry()
                multiprocess.MultiProcessCollector(registry)
            return flask.Response(prom.generate_latest(registry), mimetype=prom.CONTENT_TYPE_LATEST)

        server.add_url_rule("/metrics", "metrics", metrics)

    def observe_poll(self, event_id: str | None, written_at: list[str]) -> None:
        """The newest of the events stream's last entry (its id is milliseconds since the epoch) and the online
        store's write times (epoch seconds, or ISO times for the intraday one)."""
        times = []
        if event_id and "-" in event_id:
            times.append(int(event_id.split("-", 1)[0]) / 1000.0)
        for mark in written_at:
            seconds = _epoch(mark)
            if seconds is not None:
                times.append(seconds)
        if times:
            self.data_age.set(max(0.0, time.time() - max(times)))


def _epoch(mark: str) -> float | None:
    try:
        return float(mark)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(mark).timestamp()
    except ValueError:
        return None


def prepare_multiprocess(workers: int) -> str | None:
    """With several workers: the folder the workers' metric files go to (PROMETHEUS_MULTIPROC_DIR, or a new temp
    folder), emptied of a previous run's files. Call before prometheus_client is imported."""
    if workers <= 1:
        return None
    folder = os.environ.get(MULTIPROC_VARIABLE)
    if not folder:
        import tempfile

        folder = tempfile.mkdtemp(prefix="stockpred-dashboard-metrics-")
        os.environ[MULTIPROC_VARIABLE] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()
    return folder


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook in multiprocess mode: the dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
