"""The dashboard outside a deployment, for the tests and benchmarks/dashboard.py: a synthetic world in a lake and a
Redis (`build_world`), the app served on a free port in a thread (`serve`), headless Chromium (`browser`)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from werkzeug.serving import make_server

from dashboard.data import REPORTS, Data, Sources
from stockpred_core.alerts import parse_subscription, put_subscription
from stockpred_core.io import online_store, stream_events
from stockpred_core.io.lake import Lake

SECTORS = ("tech", "health", "energy", "finance", "utilities", "consumer", "industrials", "materials")
FEATURES = ("rsi_14", "macd_hist", "ret_5", "ret_20", "vol_20", "bb_pctb", "sma_20_gap", "atr_pct", "cmf_20", "obv_20")
BACKTEST_WEEK = "2026-11-30"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass(frozen=True)
class World:
    lake_url: str
    redis_url: str
    tickers: list[str]
    sessions: list[pd.Timestamp]

    def data(self) -> Data:
        client = redis.Redis.from_url(self.redis_url)
        return Data(Sources(Lake(self.lake_url), client, None, "stockpred"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A private redis-server on a free port (the Debian package), answering PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run scripts/ensure-test-services.sh")
    port = free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def build_world(root: Path, redis_url: str, n_tickers: int = 500, n_sessions: int = 260, seed: int = 0) -> World:
    """A lake with validated bars, features, predictions, a drift report and a backtest for `n_tickers` simulated
    tickers over `n_sessions` business days, and a Redis with the online vectors, a few alerts and a subscription.
    The Redis database is emptied first."""
    rng = np.random.default_rng(seed)
    lake = Lake(str(root / "lake"))
    tickers = [f"T{i:04d}" for i in range(n_tickers)]
    sessions = list(pd.bdate_range(end="2026-12-04", periods=n_sessions))
    returns = rng.normal(0.0003, 0.02, (n_sessions, n_tickers))
    close = pd.DataFrame(100 * np.exp(np.cumsum(returns, axis=0)), index=sessions, columns=tickers)
    lake.write_table(
        "reference",
        "sectors_simulated",
        pd.DataFrame({"ticker": tickers, "sector": [SECTORS[i % 8] for i in range(n_tickers)]}),
    )
    bars = _long(close, "close").assign(adj_close=lambda f: f["close"])
    lake.write_partitions("validated", "bars", bars, sessions)
    features = _features(close, rng)
    lake.write_partitions("features", "features", features, sessions)
    forward = close.pct_change().shift(-1).fillna(0.0)
    scored = sessions[-60:]
    signal = 0.05 * forward.loc[scored] + rng.normal(0, 0.01, (len(scored), n_tickers))
    predictions = _long(signal, "prediction").assign(
        model_version="3", model_family="lightgbm", horizon=1, label="return"
    )
    lake.write_partitions("evaluation", "predictions", predictions, scored)
    _drift(lake, sessions[-30:], rng)
    oos = 0.02 * forward.iloc[20:-1] + rng.normal(0, 0.01, (n_sessions - 21, n_tickers))
    oos_frame = _long(oos, "prediction")
    path = f"{lake.root}/{REPORTS}/backtest_report/{BACKTEST_WEEK}_predictions.parquet"
    lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    oos_frame.to_parquet(path, index=False)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    latest = features[features["date"] == sessions[-1]].assign(feature_set_version="v1")
    online_store.push_vectors(client, latest[["ticker", "date", "feature_set_version", "close", *FEATURES]])
    for i in range(5):
        publish_alert(client, tickers[i], f"above 0.0{i + 1}")
    put_subscription(client, parse_subscription({"subscriber": "desk-a", "rules": [{"kind": "top_n", "n": 10}]}))
    return World(str(root / "lake"), redis_url, tickers, sessions)


def publish_alert(client: redis.Redis, ticker: str, rule: str, subscriber: str = "desk-a") -> str:
    """An alert to the events and alerts streams as the stream worker writes it; its events entry id."""
    as_of = pd.Timestamp.now(tz="UTC").isoformat()
    alert = {"subscriber": subscriber, "rule": rule, "ticker": ticker, "value": 0.031, "threshold": 0.02,
             "message": f"{ticker}: {rule}", "as_of": as_of, "model_version": "3"}  # fmt: skip
    pipe = client.pipeline(transaction=True)
    stream_events.add_alert(pipe, alert)
    return pipe.execute()[0].decode()


def publish_predictions(client: redis.Redis, tickers: list[str], value: float) -> str:
    """XADD a refreshed-predictions entry (answers as the service serves them) for `tickers`; its entry id."""
    as_of = pd.Timestamp.now(tz="UTC").isoformat()
    answers = [
        json.dumps({"ticker": t, "prediction": value, "interval_low": value - 0.01, "interval_high": value + 0.01,
                    "feature_date": "2026-12-07", "feature_time": as_of, "model_version": "3",
                    "top_contributions": [{"feature": "rsi_14", "value": 71.0, "contribution": 0.004}]}).encode()
        for t in tickers
    ]  # fmt: skip
    fields = stream_events.prediction_fields(as_of, "3", answers)
    return client.xadd(stream_events.EVENTS_KEY, fields).decode()


def _long(wide: pd.DataFrame, name: str) -> pd.DataFrame:
    return wide.rename_axis(index="date", columns="ticker").stack().rename(name).reset_index()


def _features(close: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    middle, std = close.rolling(20, min_periods=1).mean(), close.rolling(20, min_periods=2).std()
    columns = {
        "close": close,
        "adj_close": close,
        "sma_20": middle,
        "sma_50": close.rolling(50, min_periods=1).mean(),
        "bb_middle": middle,
        "bb_upper": middle + 2 * std,
        "bb_lower": middle - 2 * std,
    }
    frame = pd.concat([_long(v, k).set_index(["date", "ticker"]) for k, v in columns.items()], axis=1)
    for name in FEATURES:
        frame[name] = rng.normal(size=len(frame))
    return frame.reset_index()


def _drift(lake: Lake, days: list[pd.Timestamp], rng: np.random.Generator) -> None:
    per_feature = pd.DataFrame(
        [
            {"date": d, "feature": f, "psi": rng.gamma(1.0, 0.05), "ks": rng.uniform(0, 0.3)}
            for d in days
            for f in FEATURES
        ]
    )
    lake.write_partitions("monitoring", "drift_features", per_feature, days)
    summary = pd.DataFrame(
        {"date": days, "status": "ok", "live_rank_ic": rng.normal(0.03, 0.02, len(days)), "baseline_rank_ic": 0.04}
    )
    lake.write_partitions("monitoring", "drift_summary", summary, days)


@contextmanager
def serve(app, port: int | None = None) -> Iterator[str]:
    """The Dash app on 127.0.0.1 in a thread (werkzeug, threaded); its base URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", port or free_port(), app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def browser(width: int = 1400, height: int = 1000):
    """Headless Chromium through chromedriver (Debian `chromium`, `chromium-driver`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    binary = shutil.which("chromium")
    if binary:
        options.binary_location = binary
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_until(predicate, timeout_s: float = 20.0, every_s: float = 0.01):
    """Poll `predicate` until it returns something truthy; that value (TimeoutError past `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"not true within {timeout_s} s")


# Plotly draws a chart into an element of class js-plotly-plot whose `data` holds its traces.
CHARTS_WITH_DATA = """return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
    e => (e.data || []).some(t => (t.x || []).length > 0 || (t.y || []).length > 0)).length"""


def open_page(driver, url: str, charts: int = 1, timeout_s: float = 30.0) -> float:
    """Navigate to `url` and wait until `charts` charts are drawn with data; milliseconds from the navigation's start
    to then (the page's `performance.now()`)."""
    driver.get(url)
    wait_until(lambda: driver.execute_script(CHARTS_WITH_DATA) >= charts, timeout_s)
    return float(driver.execute_script("return performance.now()"))


def time_until_text(driver, css: str, text: str, act, timeout_s: float = 30.0) -> float:
    """Run `act()`, then wait until the element `css` shows `text`; milliseconds from before `act` to then."""
    start = time.perf_counter()
    act()
    script = "const e = document.querySelector(arguments[0]); return e !== null && e.innerText.includes(arguments[1])"
    wait_until(lambda: driver.execute_script(script, css, text), timeout_s, every_s=0.005)
    return (time.perf_counter() - start) * 1000.0
