"""The stream and the Alpha158-like library: its columns cost ~6x the rest of an intraday row, so the worker computes
them while the settings name the family or its champion takes them, and leaves them NaN otherwise. A champion of the
library switches them on at the first refresh, every ticker with a running bar then rewritten, and its answers are
the model's on the stored vectors."""

import datetime as dt
import json

import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from support.service import register
from support.stream_world import lake_before, session_bars

from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION, LIBRARY_COLUMNS
from stockpred_core.io.online_store import META_KEY, fetch_vector, online_key
from stockpred_core.models.lgbm import LGBMForecaster
from stockpred_core.serving.keys import cache_key, cache_prefix
from stream.champion import Champion
from stream.history import LakeHistory
from stream.predictions import PredictionHandler
from stream.worker import IntradayStore

SESSION = dt.date(2025, 6, 27)
SEED, UNIVERSE = 11, 8


def register_library_champion(settings) -> str:
    rng = np.random.default_rng(2)
    columns = [*FEATURE_COLUMNS, *LIBRARY_COLUMNS]
    X = pd.DataFrame(rng.normal(size=(3000, len(columns))), columns=columns)
    y = pd.Series(0.01 * X["ret_5"] + 0.02 * X["a158_kmid"] + 0.01 * X["a158_rsv20"] + 0.01 * rng.normal(size=3000))
    model = LGBMForecaster(num_boost_round=30, seed=1, params={"min_data_in_leaf": 50}).fit(X, y)
    return register(settings, model, example=X.head(3), feature_set_version=FEATURE_SET_VERSION, horizon=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A lake with 200 sessions of validated bars before SESSION and a champion of technical + library columns."""
    settings, lake, history, daily = lake_before(tmp_path_factory.mktemp("library-stream"), SEED, UNIVERSE, SESSION)
    register_library_champion(settings)
    bars = session_bars(SEED, UNIVERSE, SESSION, daily)[:800]
    return settings, lake, sorted(history["ticker"].unique()), bars


@pytest.fixture
def db(redis_url) -> redis.Redis:
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/10")  # flushed by these tests only
    client.flushdb()
    return client


def stored_library(db, tickers) -> np.ndarray:
    return np.array([[fetch_vector(db, t)[c] for c in LIBRARY_COLUMNS] for t in tickers])


def test_the_layout_ends_with_the_library_and_a_vector_without_it_is_shorter(db, world):
    """Off, the stream's vectors hold the layout's first columns (technical and raw), the library left out."""
    settings, lake, tickers, bars = world
    handler = PredictionHandler(db, IntradayStore(db), LakeHistory(lake, settings), None)
    handler.handle(bars)
    layout = json.loads(db.hget(META_KEY, f"columns:{FEATURE_SET_VERSION}"))
    assert layout[-len(LIBRARY_COLUMNS) :] == LIBRARY_COLUMNS and layout[: len(FEATURE_COLUMNS)] == FEATURE_COLUMNS
    stored = fetch_vector(db, tickers[0])
    assert "close" in stored and not set(LIBRARY_COLUMNS) & set(stored)
    assert len(db.hget(online_key(tickers[0]), "vector")) == 8 * (len(layout) - len(LIBRARY_COLUMNS))


def test_a_champion_of_the_library_switches_it_on_and_scores_it(db, world):
    settings, lake, tickers, bars = world
    champion = Champion(settings.mlflow_tracking_uri, settings.registered_model)
    handler = PredictionHandler(db, IntradayStore(db), LakeHistory(lake, settings), champion)
    assert not handler.library  # not configured: the champion turns it on
    handler.handle(bars)
    assert handler.features.library and handler.counts["predicted"] == handler.counts["refreshed"] > 0
    served = champion.served
    assert served.takes_library
    prefix = cache_prefix(served.name, served.version, served.horizon)
    library = stored_library(db, tickers)
    assert np.isfinite(library).mean() > 0.9  # past every warm-up but a few ranks of ties
    for ticker in tickers:
        stored = fetch_vector(db, ticker)
        cached = orjson.loads(db.get(cache_key(prefix, ticker, f"{SESSION}@{stored['as_of']}", False)))
        vector = np.array([[stored[c] for c in served.feature_names]])
        assert cached["prediction"] == pytest.approx(float(served.model.predict_matrix(vector)[0]), rel=1e-9)


def test_without_a_champion_of_it_the_library_is_computed_only_when_configured(db, world):
    settings, lake, tickers, bars = world
    off = PredictionHandler(db, IntradayStore(db), LakeHistory(lake, settings), None)
    off.handle(bars)
    assert off.counts["refreshed"] > 0 and not off.features.library
    assert not set(LIBRARY_COLUMNS) & set(fetch_vector(db, tickers[0]))
    db.flushdb()
    on = PredictionHandler(db, IntradayStore(db), LakeHistory(lake, settings), None, library=True)
    on.handle(bars)
    assert on.features.library and np.isfinite(stored_library(db, tickers)).mean() > 0.9


def test_a_champion_of_it_arriving_mid_session_rewrites_every_running_ticker(db, world):
    """Short vectors written while no champion took the library; then one bar arrives with a champion that takes it:
    every ticker with a running bar is refreshed with the library and scored, not only the one that moved."""
    settings, lake, tickers, bars = world
    handler = PredictionHandler(db, IntradayStore(db), LakeHistory(lake, settings), None)
    half = len(bars) // 2
    handler.handle(bars[:half])
    moved = {bar.ticker for bar in bars[:half]}
    assert moved == set(tickers) and not set(LIBRARY_COLUMNS) & set(fetch_vector(db, tickers[0]))
    handler.champion = Champion(settings.mlflow_tracking_uri, settings.registered_model)
    predicted = handler.counts["predicted"]
    handler.handle(bars[half : half + 1])
    assert handler.features.library and handler.counts["predicted"] - predicted == len(tickers)
    for ticker in tickers:
        assert np.isfinite([fetch_vector(db, ticker)[c] for c in LIBRARY_COLUMNS]).mean() > 0.9
