"""The dashboard's Dash app and its process (`stockpred-dashboard --host --port`, `make dashboard`): gunicorn serves
it (`--workers`, `--threads`; no access log), `--dev` runs Flask's development server with the reloader instead.

One `dcc.Interval` ticks every 250 ms; its callback compares the newest events-stream id and the online store's
write times with what it saw last and, only when one changed, updates the `live` store the pages listen to: refreshed
predictions and alerts appear without a reload, and an idle tick costs two small Redis reads."""

from __future__ import annotations

import argparse
import logging
import os
import secrets

import dash
import redis
from dash import Input, Output, State, dcc, html

from dashboard.auth import LOGOUT_PATH, Keys, protect
from dashboard.data import Data, Sources
from dashboard.metrics import Metrics, prepare_multiprocess, worker_exited
from dashboard.pages import alerts, backtest, health, signals, ticker
from stockpred_core.io import online_store
from stockpred_core.settings import load_settings

PAGES = (signals, ticker, health, backtest, alerts)
POLL_MS = 250  # the live updates' target is < 500 ms: a poll costs two small Redis reads
SECRET_VARIABLE = "STOCKPRED_DASHBOARD_SECRET"  # signs the session cookie; unset: a random one per process

logger = logging.getLogger("stockpred.dashboard")


def create_app(data: Data, keys: Keys | None = None, secret: str | None = None, poll_ms: int = POLL_MS) -> dash.Dash:
    app = dash.Dash(__name__, title="stockpred", suppress_callback_exceptions=True, update_title=None)
    metrics = Metrics(tuple(p.PATH for p in PAGES))
    metrics.install(app.server)
    protect(app.server, keys or Keys({}), secret or secrets.token_hex(32))
    app.server.add_url_rule("/healthz", "healthz", lambda: "ok")
    app.layout = html.Div(
        [
            dcc.Location(id="page"),
            dcc.Interval(id="tick", interval=poll_ms),
            dcc.Store(id="live", data={}),
            html.Nav(
                [dcc.Link(p.TITLE, href=p.PATH, id=f"nav-{p.__name__.rsplit('.', 1)[-1]}") for p in PAGES]
                + [html.A("Sign out", href=LOGOUT_PATH)],
                style={"display": "flex", "gap": "1.5em", "fontFamily": "sans-serif", "padding": "0.5em"},
            ),
            html.Div(id="content", style={"fontFamily": "sans-serif", "padding": "0 1em"}),
        ]
    )
    for page in PAGES:
        page.register(app, data)

    @app.callback(Output("content", "children"), Input("page", "pathname"))
    def route(path):
        page = next((p for p in PAGES if p.PATH == (path or "/")), None)
        if page is None:
            return html.P(f"No page at {path}.")
        return [html.H2(page.TITLE), page.layout(data)]

    @app.callback(Output("live", "data"), Input("tick", "n_intervals"), State("live", "data"))
    def poll(_, seen):
        now = live_marks(data)
        if now:
            metrics.observe_poll(now.get("event"), now.get("online", []))
        return now if now != (seen or {}) else dash.no_update

    return app


def live_marks(data: Data) -> dict:
    """The newest events entry and the online store's write times: what changes when something new arrived."""
    client = data.sources.redis
    if client is None:
        return {}
    try:
        meta = client.hmget(online_store.META_KEY, ["written_at", online_store.INTRADAY_FIELD])
    except redis.RedisError:
        return {}
    return {"event": data.last_event_id(), "online": [m.decode() if m else "" for m in meta]}


class Server:
    """gunicorn run programmatically (`gunicorn.app.base.BaseApplication`): each worker builds the app after the
    fork (`build`), so no Redis connection or DuckDB handle crosses it."""

    def __init__(self, build, options: dict) -> None:
        from gunicorn.app.base import BaseApplication

        class _Application(BaseApplication):
            def load_config(self) -> None:
                for key, value in options.items():
                    self.cfg.set(key, value)

            def load(self):
                return build().server

        self.application = _Application()

    def run(self) -> None:
        self.application.run()


def gunicorn_options(host: str, port: int, workers: int, threads: int) -> dict:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,  # > 1: the gthread worker, threads answering the polls and callbacks concurrently
        "worker_class": "gthread",
        "accesslog": None,  # quiet: one line per 250 ms poll per browser would drown the log; /metrics counts them
        "errorlog": "-",
        "loglevel": "warning",
        "timeout": 60,
        "graceful_timeout": 20,
        "worker_tmp_dir": os.environ.get("TMPDIR", "/tmp"),  # the heartbeat files (read-only root in the images)
        "child_exit": lambda _server, worker: worker_exited(worker.pid),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stockpred-dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--dev", "--debug", action="store_true", help="Flask's development server with the reloader")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request (the dev server's)
    if not args.dev:
        prepare_multiprocess(args.workers)  # before the first metric is built: values in files, summed at a scrape
    settings = load_settings()
    keys = Keys.load(settings.service)
    secret = os.environ.get(SECRET_VARIABLE)
    if keys.configured and not secret:
        logger.warning("%s is unset: sessions end when the process restarts", SECRET_VARIABLE)
    if args.workers > 1 and not secret:
        secret = secrets.token_hex(32)  # one for all the workers: a session signed by one is read by the others

    def build() -> dash.Dash:
        return create_app(Data(Sources.from_settings(settings)), keys, secret)

    print(f"stockpred dashboard on http://{args.host}:{args.port}/", flush=True)
    if args.dev:
        build().run(host=args.host, port=args.port, debug=True)
    else:
        Server(build, gunicorn_options(args.host, args.port, args.workers, args.threads)).run()


if __name__ == "__main__":
    main()
