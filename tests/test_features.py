import numpy as np
import pandas as pd
import pytest

from stockpred_assets.core import calendar
from stockpred_assets.core.features import FEATURE_COLUMNS, LOOKBACK_SESSIONS, compute_features, latest_per_ticker
from stockpred_assets.core.labels import forward_returns
from stockpred_assets.core.simulation import simulate_bars


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return simulate_bars(7, 8, "2021-01-04", "2024-06-28")


@pytest.fixture(scope="module")
def table(bars) -> pd.DataFrame:
    return compute_features(bars)


def test_one_row_per_bar_with_complete_features_after_warm_up(bars, table):
    assert len(table) == len(bars)
    last_day = table[table["date"] == table["date"].max()]
    assert last_day[FEATURE_COLUMNS].notna().all().all()
    first_day = table[table["date"] == table["date"].min()]
    assert first_day["ret_1"].isna().all() and first_day["sma_50_gap"].isna().all()


def test_point_in_time_a_feature_for_d_uses_nothing_after_d(bars, table):
    day = pd.Timestamp("2023-03-15")
    truncated = compute_features(bars[bars["date"] <= day])
    a = table[table["date"] == day].set_index("ticker")[FEATURE_COLUMNS]
    b = truncated[truncated["date"] == day].set_index("ticker")[FEATURE_COLUMNS]
    pd.testing.assert_frame_equal(a, b)


def test_the_declared_look_back_reproduces_full_history_features(bars, table):
    day = pd.Timestamp("2024-06-28")
    start = calendar.previous_sessions(day, LOOKBACK_SESSIONS)[0]
    short = compute_features(bars[bars["date"] >= start])
    a = table[table["date"] == day].set_index("ticker")[FEATURE_COLUMNS]
    b = short[short["date"] == day].set_index("ticker")[FEATURE_COLUMNS]
    # Exact for windowed features; EMA/Wilder seeds decay to < 0.01 RSI points within the look-back.
    np.testing.assert_allclose(a.drop(columns="rsi_14"), b.drop(columns="rsi_14"), atol=1e-4, rtol=0)
    np.testing.assert_allclose(a["rsi_14"], b["rsi_14"], atol=1e-2, rtol=0)


def test_feature_values_by_hand():
    bars = simulate_bars(7, 1, "2024-01-02", "2024-03-28")
    table = compute_features(bars).set_index("date")
    close = bars.set_index("date")["close"]
    assert table["ret_5"].iloc[10] == pytest.approx(close.iloc[10] / close.iloc[5] - 1)
    assert table["sma_10_gap"].iloc[20] == pytest.approx(close.iloc[20] / close.iloc[11:21].mean() - 1)
    assert table["volume_ratio_20"].iloc[25] == pytest.approx(
        bars["volume"].iloc[25] / bars["volume"].iloc[6:26].mean()
    )


def test_labels_are_forward_returns_and_latest_vector(bars, table):
    label = forward_returns(bars, 5)
    adj = bars.pivot(index="date", columns="ticker", values="adj_close")
    d0, d5 = adj.index[100], adj.index[105]
    assert label.loc[(d0, "S00002")] == pytest.approx(adj.loc[d5, "S00002"] / adj.loc[d0, "S00002"] - 1)
    assert label.index.get_level_values("date").max() == adj.index[-6]  # the last 5 sessions have no label yet
    latest = latest_per_ticker(table)
    assert latest["ticker"].tolist() == sorted(bars["ticker"].unique())
    assert (latest["date"] == table["date"].max()).all()
