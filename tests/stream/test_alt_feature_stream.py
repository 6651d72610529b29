"""The stream serves a champion trained on the combined (technical + alternative) set: each ticker's intraday vector
takes the alternative row of the lake's newest alt_features day before the session (never the session's own row,
which needs its close), NaN with mask 0 for a ticker that day lacks; without any alternative day the champion is not
scored and the vectors stay technical."""

import datetime as dt

import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from support.service import register
from support.stream_world import lake_before, session_bars

from stockpred_core.dataset.training_set import ALT_TABLE, MASKS
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION, FAMILIES
from stockpred_core.features.alternative_catalog import feature_set_version as version_of
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION
from stockpred_core.io.lake import Lake
from stockpred_core.io.online_store import fetch_vector
from stockpred_core.models.lgbm import LGBMForecaster
from stockpred_core.serving.keys import cache_key, cache_prefix
from stream.champion import Champion
from stream.history import LakeHistory
from stream.predictions import PredictionHandler
from stream.worker import IntradayStore

SESSION = dt.date(2025, 6, 27)
PREVIOUS = pd.Timestamp("2025-06-26")
SEED, UNIVERSE = 11, 8
COMBINED = version_of(FAMILIES)
NO_ROW = "S00005"  # a ticker the alternative day lacks


def alt_rows(tickers: list[str], day: pd.Timestamp, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"date": day, "ticker": tickers})
    for column in ALT_COLUMNS:
        frame[column] = rng.normal(size=len(tickers))
    frame[MASKS] = 1.0
    frame["alt_feature_set_version"] = ALT_FEATURE_SET_VERSION
    return frame


def register_alt_champion(settings) -> str:
    rng = np.random.default_rng(1)
    columns = [*FEATURE_COLUMNS, *ALT_COLUMNS]
    X = pd.DataFrame(rng.normal(size=(3000, len(columns))), columns=columns)
    y = pd.Series(0.01 * X["ret_5"] + 0.02 * X["news_sentiment"] + 0.01 * X["macro_vix"] + 0.01 * rng.normal(size=3000))
    model = LGBMForecaster(num_boost_round=30, seed=1, params={"min_data_in_leaf": 50}).fit(X, y)
    return register(settings, model, example=X.head(3), feature_set_version=COMBINED, horizon=5)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A lake with 200 sessions of validated bars before SESSION and a champion of the combined set."""
    settings, lake, history, daily = lake_before(tmp_path_factory.mktemp("alt-stream"), SEED, UNIVERSE, SESSION)
    register_alt_champion(settings)
    bars = session_bars(SEED, UNIVERSE, SESSION, daily)[:800]
    return settings, lake, sorted(history["ticker"].unique()), bars


@pytest.fixture
def db(redis_url) -> redis.Redis:
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/8")  # flushed by these tests only
    client.flushdb()
    return client


def handler_for(db, settings, lake) -> PredictionHandler:
    return PredictionHandler(
        db,
        IntradayStore(db),
        LakeHistory(lake, settings),
        Champion(settings.mlflow_tracking_uri, settings.registered_model),
    )


def test_the_champion_scores_yesterdays_alternative_row_appended(db, world):
    settings, lake, tickers, bars = world
    older = alt_rows(tickers, pd.Timestamp("2025-06-25"), seed=1)
    previous = alt_rows([t for t in tickers if t != NO_ROW], PREVIOUS, seed=2)
    own = alt_rows(tickers, pd.Timestamp(SESSION), seed=3).assign(news_sentiment=1e6)  # needs the session's close
    for frame in (older, previous, own):
        lake.write_partitions(*ALT_TABLE, frame, [frame["date"].iloc[0]])
    handler = handler_for(db, settings, lake)
    handler.handle(bars)
    assert handler.alt.date == PREVIOUS and handler.counts["predicted"] == handler.counts["refreshed"] > 0

    served = handler.champion.served
    prefix = cache_prefix(served.name, served.version, served.horizon)
    expected = previous.set_index("ticker")
    scored = 0
    for ticker in tickers:
        stored = fetch_vector(db, ticker)
        if stored is None:
            continue
        scored += 1
        assert stored["feature_set_version"] == COMBINED
        alt = np.array([stored[c] for c in ALT_COLUMNS])
        if ticker == NO_ROW:
            values = np.array([stored[c] for c in ALT_COLUMNS if c not in MASKS])
            assert np.isnan(values).all() and [stored[m] for m in MASKS] == [0.0] * len(MASKS)
        else:
            np.testing.assert_array_equal(alt, expected.loc[ticker, ALT_COLUMNS].to_numpy(dtype=float))
        cached = orjson.loads(db.get(cache_key(prefix, ticker, f"{SESSION}@{stored['as_of']}", False)))
        vector = np.array([[stored[c] for c in served.feature_names]])
        assert cached["feature_set_version"] == COMBINED
        assert cached["prediction"] == pytest.approx(float(served.model.predict_matrix(vector)[0]), rel=1e-9)
    assert scored == len(tickers)


def test_without_an_alternative_day_before_the_session_the_champion_is_not_scored(db, world, tmp_path):
    settings, lake, tickers, bars = world
    bare = Lake(str(tmp_path / "lake"))  # the bars alone: alt_features never materialized
    for table in ("bars", "events"):
        frame = lake.read_range("validated", table, "2024-01-01", PREVIOUS)
        bare.write_partitions("validated", table, frame, lake.partition_dates("validated", "bars"))
    handler = handler_for(db, settings, bare)
    handler.handle(bars)
    assert handler.alt is None and "no alt_features day before 2025-06-27" in handler.alt_error
    assert handler.counts["refreshed"] > 0 and handler.counts["predicted"] == 0
    stored = fetch_vector(db, tickers[0])
    assert stored["feature_set_version"] == FEATURE_SET_VERSION and "news_sentiment" not in stored
