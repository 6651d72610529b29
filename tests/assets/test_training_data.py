"""The weekly training set comes from the lake through DuckDB and is point in time."""

import numpy as np
import pandas as pd
import pytest

from stockpred_assets.training.data import load_training_set
from stockpred_core.data.simulation import simulate_bars
from stockpred_core.features.batch import compute_features
from stockpred_resources.lake import DuckDBResource, LakeResource

CUTOFF = pd.Timestamp("2023-06-05")  # a Monday: the week whose model is trained


@pytest.fixture(scope="module")
def history():
    bars = simulate_bars(11, 12, "2021-06-01", "2023-08-31")
    return bars, compute_features(bars)


def write(lake: LakeResource, bars: pd.DataFrame, features: pd.DataFrame) -> None:
    days = sorted(pd.to_datetime(bars["date"]).unique())
    lake.write_partitions("validated", "bars", bars, days)
    lake.write_partitions("features", "features", features, days)


def test_the_training_set_is_point_in_time(tmp_path, history):
    bars, features = history
    resources = [LakeResource(url=str(tmp_path / name)) for name in ("past", "full")]
    duckdb = DuckDBResource(database=str(tmp_path / "catalog.duckdb"))
    past = bars["date"] < CUTOFF
    write(resources[0], bars[past], features[features["date"] < CUTOFF])
    # the same history followed by a future in which every price and feature is wildly different
    poisoned_bars = bars.copy()
    for column in ("open", "high", "low", "close", "adj_close"):
        poisoned_bars.loc[~past, column] *= 3.0
    poisoned_features = features.copy()
    numeric = poisoned_features.select_dtypes("number").columns
    poisoned_features.loc[features["date"] >= CUTOFF, numeric] = 1e6
    write(resources[1], poisoned_bars, poisoned_features)

    sets = [load_training_set(lake, duckdb, CUTOFF, 52, 5, "return") for lake in resources]
    pd.testing.assert_frame_equal(sets[0].X, sets[1].X)
    pd.testing.assert_series_equal(sets[0].y, sets[1].y)
    dates = sets[0].X.index.get_level_values("date")
    sessions = pd.DatetimeIndex(sorted(bars.loc[past, "date"].unique()))
    # the newest row's 5-session label ends on the last session before the cut-off, no later
    assert dates.max() == sessions[-6]
    assert dates.min() >= CUTOFF - pd.Timedelta(weeks=52)
    expected = bars.set_index(["date", "ticker"])["adj_close"].unstack()
    day, ticker = sets[0].y.index[-1]
    assert sets[0].y.iloc[-1] == pytest.approx(expected.shift(-5).loc[day, ticker] / expected.loc[day, ticker] - 1)
    assert np.isfinite(sets[0].X.to_numpy(dtype=float)[~np.isnan(sets[0].X.to_numpy(dtype=float))]).all()


def test_rank_labels_keep_returns_for_measurement(tmp_path, history):
    bars, features = history
    lake = LakeResource(url=str(tmp_path / "lake"))
    write(lake, bars, features)
    duckdb = DuckDBResource(database=str(tmp_path / "catalog.duckdb"))
    ranked = load_training_set(lake, duckdb, CUTOFF, 52, 1, "rank")
    assert ranked.y.abs().max() < 0.5
    assert ranked.returns.groupby(level="date").rank().equals(ranked.y.groupby(level="date").rank())
