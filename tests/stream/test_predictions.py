"""The intraday handler end to end on a real Redis, a real lake and a real MLflow registry: a simulated session's
minute bars refresh the online store, the service's cache and the events stream with the champion's predictions of
the session's rows, equal to the batch features of the same bars; a restart loses and repeats nothing."""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from support.doc_commands import as_argv, doc_options
from support.service import fit, register, serve
from support.stream_world import lake_before
from support.stream_world import session_bars as replay_bars
from support.waiting import wait_until

from stockpred_core.features.batch import MarketContext, compute_features
from stockpred_core.features.catalog import FEATURE_SET_VERSION
from stockpred_core.io.model_card import CHAMPION_ALIAS, read_model_card
from stockpred_core.io.model_registry import use_registry
from stockpred_core.io.online_store import INTRADAY_FIELD, META_KEY, fetch_vector, online_key
from stockpred_core.io.stream_events import EVENTS_KEY, parse_event
from stockpred_core.serving.answers import score
from stockpred_core.serving.keys import cache_key, cache_prefix
from stockpred_core.serving.model import load_served
from stockpred_core.serving.rows import FeatureRow
from stream.bus import BarBus
from stream.champion import Champion
from stream.history import LakeHistory
from stream.predictions import PredictionHandler
from stream.worker import IntradayStore

SESSION = dt.date(2025, 6, 27)
SEED, UNIVERSE = 11, 12


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A lake with the validated bars of 200 sessions before SESSION and a champion in the registry."""
    settings, lake, history, daily = lake_before(tmp_path_factory.mktemp("intraday"), SEED, UNIVERSE, SESSION)
    register(settings, fit("lightgbm", rounds=30))
    return settings, lake, history, daily


def db_url(redis_url: str) -> str:
    """Database 6 of the session's redis-server: these tests flush it."""
    return redis_url.rsplit("/", 1)[0] + "/6"


@pytest.fixture
def db(redis_url) -> redis.Redis:
    client = redis.Redis.from_url(db_url(redis_url))
    client.flushdb()
    return client


def handler_for(db, world, prefix="stockpred:intraday"):
    settings, lake, *_ = world
    return PredictionHandler(
        db,
        IntradayStore(db, prefix=prefix),
        LakeHistory(lake, settings),
        Champion(settings.mlflow_tracking_uri, settings.registered_model),
    )


def session_bars(world) -> list:
    *_, daily = world
    return replay_bars(SEED, UNIVERSE, SESSION, daily)


def expected_answers(world, bars) -> dict[str, dict]:
    """The champion's answers for the session's rows computed by the batch implementation on history + the day's
    bars so far (each ticker's running bar)."""
    settings, _, history, _ = world
    frame = pd.DataFrame(
        [(b.ticker, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],
        columns=["ticker", "ts", "open", "high", "low", "close", "volume"],
    ).sort_values("ts")
    day = (
        frame.groupby("ticker")
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        .reset_index()
    )
    day["adj_close"] = day["close"]
    day["date"] = pd.Timestamp(SESSION)
    table = compute_features(
        pd.concat([history[day.columns.tolist()], day], ignore_index=True), MarketContext(sectors={})
    )
    rows = table[table["date"] == pd.Timestamp(SESSION)]
    card = read_model_card(use_registry(settings.mlflow_tracking_uri), settings.registered_model, CHAMPION_ALIAS)
    served = load_served(card)
    columns = [c for c in rows.columns if c not in ("date", "ticker", "feature_set_version")]
    feature_rows = [
        FeatureRow(
            r.ticker,
            str(SESSION),
            r.close,
            FEATURE_SET_VERSION,
            np.array([getattr(r, c) for c in columns]),
            tuple(columns),
            "batch",
        )
        for r in rows.itertuples()
    ]
    return {orjson.loads(a)["ticker"]: orjson.loads(a) for a in score(served, feature_rows, explain=True)}


def test_a_session_refreshes_features_cache_and_events(db, world):
    bars = session_bars(world)
    handler = handler_for(db, world)
    half = len(bars) // 2
    for start in range(0, half, 500):
        handler.handle(bars[start : min(start + 500, half)])
    counts = handler.counts
    assert counts["applied"] == half and counts["refreshed"] > 0 and counts["predicted"] == counts["refreshed"]

    expected = expected_answers(world, bars[:half])
    settings = world[0]
    served = handler.champion.served
    prefix = cache_prefix(served.name, served.version, served.horizon)
    for ticker, answer in expected.items():
        stored = fetch_vector(db, ticker)
        last_end = max(b.end_ms for b in bars[:half] if b.ticker == ticker)
        as_of = dt.datetime.fromtimestamp(last_end / 1000, dt.UTC)
        assert stored["date"] == str(SESSION) and pd.Timestamp(stored["as_of"]) == as_of
        cached = orjson.loads(db.get(cache_key(prefix, ticker, f"{SESSION}@{stored['as_of']}", False)))
        assert cached["feature_time"] == stored["as_of"]
        assert cached["prediction"] == pytest.approx(answer["prediction"], rel=1e-9, abs=1e-12)
        assert cached["interval_low"] == pytest.approx(answer["interval_low"], rel=1e-9, abs=1e-12)
    assert db.hget(META_KEY, INTRADAY_FIELD) is not None

    events = db.xrange(EVENTS_KEY)
    kinds = [parse_event(fields) for _, fields in events]
    assert {kind for kind, *_ in kinds} == {"predictions"}
    pushed = {p["ticker"]: p for _, _, data in kinds for p in data["predictions"]}
    assert set(pushed) == set(expected)
    assert settings.registered_model == served.name


def test_a_restart_after_the_store_applied_a_batch_loses_and_repeats_nothing(db, world):
    bars = session_bars(world)
    first = handler_for(db, world)
    first.handle(bars[:600])
    # a crash after the store applied the next batch, before features and predictions were written: only the store
    first.store.apply(bars[600:900])
    before = db.xlen(EVENTS_KEY)

    second = handler_for(db, world)
    second.handle(bars[600:900])  # redelivered
    assert second.counts["duplicates"] == 300 and second.counts["applied"] == 0
    # the restart refreshed every ticker of the session from the store's bars, the redelivered ones included
    expected = expected_answers(world, bars[:900])
    served = second.champion.served
    prefix = cache_prefix(served.name, served.version, served.horizon)
    for ticker, answer in expected.items():
        stored = fetch_vector(db, ticker)
        cached = orjson.loads(db.get(cache_key(prefix, ticker, f"{SESSION}@{stored['as_of']}", False)))
        assert cached["prediction"] == pytest.approx(answer["prediction"], rel=1e-9, abs=1e-12)
    assert db.xlen(EVENTS_KEY) == before + 1


def test_bars_of_an_earlier_session_refresh_nothing(db, world):
    """A ticker's bars before its last applied one are out of order (the store's rule); one of a ticker with no
    newer bar, but of a session the features left, is stored and counted late. Neither moves a prediction."""
    bars = session_bars(world)
    handler = handler_for(db, world)
    handler.handle([b for b in bars[:200] if b.ticker != "S00003"])
    events = db.xlen(EVENTS_KEY)
    back = 3 * 86_400_000
    earlier = [type(b)(b.ticker, b.ts - back, *(getattr(b, f) for f in FIELDS)) for b in bars[:40]]
    handler.handle(earlier)
    late = sum(b.ticker == "S00003" for b in earlier)
    assert late and handler.counts["late_bars"] == late
    assert handler.counts["out_of_order"] == len(earlier) - late
    assert db.xlen(EVENTS_KEY) == events and not db.exists(online_key("S00003"))


FIELDS = ("interval_s", "open", "high", "low", "close", "volume")


def test_the_service_answers_the_newest_intraday_prediction(db, world, redis_url, tmp_path):
    """POST /predict after a refresh: the worker's answer for the newest bar, from the cache, with its time; with
    contributions (which the worker leaves to the service) the same prediction, computed from the intraday vector;
    after the next bars, the next one (never an answer older than the features)."""
    settings = world[0]
    env = {
        "STOCKPRED_ENV": "local",
        "STOCKPRED_DATA_DIR": str(settings.data_dir),
        "STOCKPRED_REDIS_URL": db_url(redis_url),
    }
    bars = session_bars(world)
    handler = handler_for(db, world)
    handler.handle(bars[:300])
    with serve(env, tmp_path / "bento.log", ready_path="/livez") as base:
        first = _predict(base, "S00005", explain=False)
        stored = fetch_vector(db, "S00005")
        assert first["feature_date"] == str(SESSION) and first["feature_time"] == stored["as_of"]
        assert first["cached"] is True and first["top_contributions"] == []
        explained = _predict(base, "S00005", explain=True)
        assert explained["cached"] is False and explained["feature_time"] == first["feature_time"]
        assert explained["prediction"] == first["prediction"] and len(explained["top_contributions"]) == 5
        assert _predict(base, "S00005", explain=True)["cached"] is True
        handler.handle(bars[300:600])
        second = _predict(base, "S00005", explain=False)
        assert second["feature_time"] == fetch_vector(db, "S00005")["as_of"] > first["feature_time"]
        expected = expected_answers(world, bars[:600])["S00005"]
        assert second["prediction"] == pytest.approx(expected["prediction"], rel=1e-9, abs=1e-12)


def _predict(base: str, ticker: str, explain: bool) -> dict:
    answer: dict = {}

    def answered() -> bool:
        nonlocal answer
        response = httpx.post(f"{base}/predict", json={"ticker": ticker, "explain": explain}, timeout=10)
        answer = response.json()
        return response.status_code == 200

    wait_until(answered, timeout=60, interval=0.5)
    return answer


def test_the_documented_worker_command_refreshes_pushes_and_alerts(db, world, redis_url, tmp_path):
    """`stockpred-stream worker --predict --alert-rules FILE` as docs/operations.md shows it, on a session published
    to the bus: prediction events for every ticker, an alert, and its counters when stopped."""
    settings = world[0]
    rules = tmp_path / "alerts.yaml"
    rules.write_text("subscriptions:\n  - subscriber: desk\n    rules:\n      - {kind: top_n, n: 1}\n")
    options = doc_options(r"^\.venv/bin/stockpred-stream worker .*--predict")
    options |= {"--redis-url": db_url(redis_url), "--alert-rules": str(rules), "--block-ms": "50"}
    env = {**os.environ, "STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(settings.data_dir)}
    command = shutil.which("stockpred-stream", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [command, "worker", *as_argv(options)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        bars = session_bars(world)
        bus = BarBus(db, int(options["--shards"]))
        bus.publish(bars)
        wait_until(lambda: _pushed(db) == {f"S{i:05d}" for i in range(UNIVERSE)}, timeout=120, interval=0.2)
        wait_until(lambda: any(kind == "alert" for kind, *_ in _events(db)), timeout=30, interval=0.2)
        wait_until(lambda: _drained(bus), timeout=120, interval=0.2)  # every bar read and acknowledged
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    [counters] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert counters["applied"] == len(bars) and counters["predicted"] > 0 and counters["alerts"] >= 1
    [alert] = [data for kind, _, data in _events(db) if kind == "alert"][:1]
    assert alert["subscriber"] == "desk" and alert["rule"] == "top_n 1"


def _events(db) -> list[tuple[str, list[str], dict]]:
    return [parse_event(fields) for _, fields in db.xrange(EVENTS_KEY)]


def _drained(bus: BarBus) -> bool:
    """Every shard's group exists, has read its whole stream (lag 0) and acknowledged all it read."""
    for shard in range(bus.shards):
        groups = {g["name"].decode(): g for g in bus.client.xinfo_groups(bus.stream(shard))}
        group = groups.get(bus.group)
        if group is None or group["pending"] != 0:
            return False
        last = bus.client.xinfo_stream(bus.stream(shard))["last-generated-id"]
        if group["last-delivered-id"] != last:  # "lag" is nil after a trim; the ids always compare
            return False
    return True


def _pushed(db) -> set[str]:
    return {p["ticker"] for kind, _, data in _events(db) if kind == "predictions" for p in data["predictions"]}


def test_a_batch_whose_writes_failed_is_refreshed_when_it_comes_again(db, world, monkeypatch):
    """Redis drops the connection at the batch's transaction (after the store applied its bars): the worker does not
    acknowledge it, the batch comes again as duplicates, and the tickers it moved are refreshed then."""
    bars = session_bars(world)
    handler = handler_for(db, world)
    handler.handle(bars[:300])
    real, failures = redis.client.Pipeline.execute, [redis.ConnectionError("connection reset (injected)")]

    def execute(pipe, *args, **kwargs):
        if pipe.transaction and failures:
            pipe.reset()
            raise failures.pop()
        return real(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    with pytest.raises(redis.ConnectionError):
        handler.handle(bars[300:600])
    events = db.xlen(EVENTS_KEY)
    handler.handle(bars[300:600])  # redelivered
    assert handler.counts["duplicates"] == 300 and db.xlen(EVENTS_KEY) == events + 1
    served = handler.champion.served
    prefix = cache_prefix(served.name, served.version, served.horizon)
    for ticker, answer in expected_answers(world, bars[:600]).items():
        stored = fetch_vector(db, ticker)
        assert pd.Timestamp(stored["as_of"]).value // 1_000_000 == max(
            b.end_ms for b in bars[:600] if b.ticker == ticker
        )
        cached = orjson.loads(db.get(cache_key(prefix, ticker, f"{SESSION}@{stored['as_of']}", False)))
        assert cached["prediction"] == pytest.approx(answer["prediction"], rel=1e-9, abs=1e-12)
