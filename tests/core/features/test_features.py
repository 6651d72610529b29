import numpy as np
import pandas as pd
import pytest

from stockpred_core.data import calendar
from stockpred_core.data.simulation import simulate_bars, ticker_sector
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.features.batch import (
    FEATURE_COLUMNS,
    LOOKBACK_SESSIONS,
    RAW_COLUMNS,
    MarketContext,
    compute_features,
    latest_per_ticker,
)
from stockpred_core.features.catalog import (
    FEATURE_SET_VERSION,
    LIBRARY_COLUMNS,
    MODEL_INPUTS,
    REGISTRY,
    registry_frame,
)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return simulate_bars(7, 8, "2021-01-04", "2024-06-28")


@pytest.fixture(scope="module")
def table(bars) -> pd.DataFrame:
    return compute_features(bars)


@pytest.fixture(scope="module")
def sp500(shared_data) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz", parse_dates=["date"])
    raw = raw.rename(columns={"Name": "ticker"}).dropna(subset=["open", "high", "low", "close"])
    tickers = sorted(raw["ticker"].unique())[::10]  # 51 tickers across the alphabet
    return raw[raw["ticker"].isin(tickers) & (raw["date"] < "2016-07-01")].assign(adj_close=lambda f: f["close"])


def test_registry_matches_the_table(table):
    assert list(table.columns) == [
        "date",
        "ticker",
        *FEATURE_COLUMNS,
        *RAW_COLUMNS,
        *LIBRARY_COLUMNS,
        "feature_set_version",
    ]
    assert (table["feature_set_version"] == FEATURE_SET_VERSION).all()
    frame = registry_frame()
    assert frame["name"].tolist() == [s.name for s in REGISTRY] and frame["name"].is_unique
    assert {"definition", "window", "warmup", "version", "model_input"} <= set(frame.columns)


def test_warm_up_values_are_nan_and_later_values_are_complete(table):
    one = table[table["ticker"] == "S00003"].reset_index(drop=True)
    for spec in REGISTRY:
        first_valid = one[spec.name].first_valid_index()
        assert first_valid is not None and first_valid >= spec.warmup, spec.name
        if spec.family == "alpha158":  # the library's warm-ups are exact
            assert first_valid == spec.warmup, spec.name
    assert one[FEATURE_COLUMNS].iloc[200:].notna().all().all()
    assert np.isfinite(table[FEATURE_COLUMNS].to_numpy(dtype=float)[~table[FEATURE_COLUMNS].isna().to_numpy()]).all()


def test_point_in_time_on_real_data_changing_later_bars_changes_nothing_before(sp500):
    day = pd.Timestamp("2015-06-30")
    before = compute_features(sp500).set_index(["date", "ticker"])
    later = sp500["date"] > day
    tampered = sp500.copy()
    tampered.loc[later, ["open", "high", "low", "close", "adj_close"]] *= 1.7
    tampered = tampered.drop(index=tampered.index[later][::3])  # and delete a third of the later bars
    after = compute_features(tampered).set_index(["date", "ticker"])
    keep = before.index.get_level_values("date") <= day
    pd.testing.assert_frame_equal(before[keep][MODEL_INPUTS], after.loc[before[keep].index][MODEL_INPUTS])


def test_the_declared_look_back_reproduces_full_history_features(bars, table):
    day = pd.Timestamp("2024-06-28")
    start = calendar.previous_sessions(day, LOOKBACK_SESSIONS)[0]
    short = compute_features(bars[bars["date"] >= start], since=day)  # the daily run's rows: the day's only
    assert set(short["date"]) == {day}
    a = table[table["date"] == day].set_index("ticker")[MODEL_INPUTS]
    b = short.set_index("ticker")[MODEL_INPUTS]
    # Exact for windowed features; EMA/Wilder seeds fade below 1e-9 within the look-back (tests/assets/
    # test_feature_skew.py checks the same through the assets on real data).
    np.testing.assert_allclose(a, b, atol=1e-9, rtol=0)


def test_new_listings_gaps_and_zero_volume():
    bars = simulate_bars(7, 6, "2022-01-03", "2023-06-30")
    listing = bars[(bars["ticker"] != "S00005") | (bars["date"] >= "2022-09-01")]  # S00005 lists later
    gap = listing.drop(
        index=listing.index[(listing["ticker"] == "S00004") & listing["date"].between("2023-01-09", "2023-01-11")]
    )
    gap.loc[(gap["ticker"] == "S00003") & gap["date"].between("2023-02-01", "2023-03-15"), "volume"] = 0.0
    out = compute_features(gap).set_index(["date", "ticker"])
    values = out[FEATURE_COLUMNS].to_numpy(dtype=float)
    assert not np.isinf(values).any()
    own = compute_features(gap[gap["ticker"] == "S00005"]).set_index(["date", "ticker"])
    per_ticker = ["rsi_14", "macd_pct", "stoch_k", "adx_14", "bb_pctb", "atr_pct", "cmf_20", "sma_50_gap"]
    pd.testing.assert_frame_equal(out.loc[own.index, per_ticker], own[per_ticker])  # as if the series began there
    zero = out.xs("S00003", level="ticker").loc["2023-03-01"]
    assert np.isnan(zero["volume_ratio_20"]) and np.isnan(zero["obv_change_20"])
    assert zero[["rsi_14", "ret_5", "atr_pct"]].notna().all()  # price features do not care about volume


def test_market_context_index_vix_and_sectors(bars):
    dates = pd.DatetimeIndex(sorted(bars["date"].unique()))
    index = pd.Series(np.linspace(100.0, 200.0, len(dates)), index=dates)  # a steady bull market
    vix = pd.Series(17.5, index=dates)
    sectors = {t: ticker_sector(t) for t in bars["ticker"].unique()}
    out = compute_features(bars, MarketContext(index_close=index, vix=vix, sectors=sectors))
    last = out[out["date"] == dates[-1]].set_index("ticker")
    assert (last["market_regime"] == 1.0).all() and (last["vix"] == 17.5).all()
    same_sector = [t for t, s in sectors.items() if s == sectors["S00000"]]
    peers = last.loc[same_sector, "ret_20"]
    assert last.loc["S00000", "sector_rel_20"] == pytest.approx(last.loc["S00000", "ret_20"] - peers.mean())
    assert last["ret_5_rank"].between(0, 1).all() and abs(last["ret_5_z"].mean()) < 1e-9


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
