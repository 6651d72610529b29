"""The Alpha158-like library on real bars: each formula against a direct computation over one window, point in time,
the same values from 61 sessions of history as from all of it, and the cross-sectional normalization."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import SHARED_DATA

from stockpred_core.features import alpha
from stockpred_core.features.batch import compute_features

SP500 = SHARED_DATA / "market" / "all_stocks_5yr.csv.gz"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    if not SP500.is_file():
        pytest.skip(f"{SP500} is not here (../shared/data)")
    frame = pd.read_csv(SP500, parse_dates=["date"]).rename(columns={"Name": "ticker"})
    frame = frame[frame["ticker"].isin(["AAPL", "XOM", "JPM", "KO", "PFE", "GE", "F", "AMZN"])]
    frame = frame[frame["date"] < "2014-06-01"].dropna()
    # a dividend-like factor: adj_close below close before 2013-09, so open/high/low are scaled too
    return frame.assign(adj_close=frame["close"] * np.where(frame["date"] < "2013-09-03", 0.97, 1.0))


def library(bars: pd.DataFrame, since=None) -> pd.DataFrame:
    """The library's columns of the feature table (`compute_features`), where the platform computes it."""
    return compute_features(bars, since=since)[["date", "ticker", *alpha.ALPHA_COLUMNS]]


def _wide(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {c: bars.pivot(index="date", columns="ticker", values=c).sort_index() for c in alpha.BAR_FIELDS}


def test_157_columns_with_definitions():
    assert len(alpha.ALPHA_COLUMNS) == 9 + 3 + 29 * 5 == 157
    assert alpha.ALPHA_SPECS["a158_rsv20"] == ("(close - min(low, 20)) / (max(high, 20) - min(low, 20))", 20)
    assert alpha.ALPHA_SPECS["a158_cntp20"][1] == 21  # changes read the session before the window too
    assert alpha.ALPHA_SPECS["a158_cntp5"][0] == "share of up days over 5"


def test_formulas_match_a_direct_computation_over_one_window(bars):
    w = _wide(bars)
    factor = w["adj_close"] / w["close"]
    o, h, lo, c, v = w["open"] * factor, w["high"] * factor, w["low"] * factor, w["adj_close"], w["volume"]
    raw = alpha.raw_alpha(o, h, lo, c, v)
    day, ticker, d = pd.Timestamp("2013-09-10"), "JPM", 20  # the window spans the factor's change
    i = c.index.get_loc(day)
    cw, hw, lw, vw = (x[ticker].iloc[i - d + 1 : i + 1].to_numpy() for x in (c, h, lo, v))
    t = np.arange(1, d + 1)
    slope, intercept = np.polyfit(t, cw, 1)
    resid = cw - (intercept + slope * t)
    changes = np.diff(c[ticker].iloc[i - d : i + 1].to_numpy())
    vchanges = np.diff(v[ticker].iloc[i - d : i + 1].to_numpy())
    rets = c[ticker].iloc[i - d : i + 1].to_numpy()
    ret_ratio = rets[1:] / rets[:-1]
    vol = v[ticker].iloc[i - d : i + 1].to_numpy()
    expected = {
        "kmid": (cw[-1] - o[ticker].iloc[i]) / o[ticker].iloc[i],
        "ksft2": (2 * cw[-1] - hw[-1] - lw[-1]) / (hw[-1] - lw[-1] + 1e-12),
        "high0": hw[-1] / cw[-1],
        f"roc{d}": c[ticker].iloc[i - d] / cw[-1],
        f"std{d}": cw.std(ddof=1) / cw[-1],
        f"beta{d}": slope / cw[-1],
        f"rsqr{d}": 1 - (resid**2).sum() / ((cw - cw.mean()) ** 2).sum(),
        f"resi{d}": resid[-1] / cw[-1],
        f"qtlu{d}": np.quantile(cw, 0.8) / cw[-1],
        f"rank{d}": (np.sum(cw < cw[-1]) + (np.sum(cw == cw[-1]) + 1) / 2) / d,
        f"rsv{d}": (cw[-1] - lw.min()) / (hw.max() - lw.min() + 1e-12),
        f"imax{d}": (np.argmax(hw) + 1) / d,
        f"imxd{d}": (np.argmax(hw) - np.argmin(lw)) / d,
        f"corr{d}": np.corrcoef(cw, np.log(vw + 1))[0, 1],
        f"cord{d}": np.corrcoef(ret_ratio, np.log(vol[1:] / vol[:-1] + 1))[0, 1],
        f"cntd{d}": np.mean(changes > 0) - np.mean(changes < 0),
        f"sump{d}": changes.clip(min=0).sum() / (np.abs(changes).sum() + 1e-12),
        f"vsumn{d}": (-vchanges).clip(min=0).sum() / (np.abs(vchanges).sum() + 1e-12),
        f"wvma{d}": np.std(np.abs(ret_ratio - 1) * vw, ddof=1) / (np.mean(np.abs(ret_ratio - 1) * vw) + 1e-12),
    }
    for name, value in expected.items():
        assert raw[f"a158_{name}"].loc[day, ticker] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_a_day_depends_only_on_its_last_61_sessions(bars):
    """Point in time (later bars, even corrupted, change nothing) and start-independent (no recursion): a daily run
    that reads 61 sessions serves what a backfill over years computed."""
    full = library(bars).set_index(["date", "ticker"]).sort_index()
    dates = sorted(bars["date"].unique())
    day = dates[300]
    window = bars[(bars["date"] >= dates[300 - alpha.LOOKBACK + 1]) & (bars["date"] <= day)]
    later = bars[bars["date"] > day].assign(
        close=lambda f: f["close"] * 3, adj_close=lambda f: f["adj_close"] * 5, high=1e6, low=1e-3, volume=0.0
    )
    short = library(pd.concat([window, later])).set_index(["date", "ticker"]).sort_index()
    np.testing.assert_allclose(short.loc[day].to_numpy(), full.loc[day].to_numpy(), rtol=0, atol=1e-9)
    assert full.loc[day].notna().all().all()  # every column is out of its warm-up by then
    only = library(window, since=day).set_index(["date", "ticker"])  # the daily run computes the day's rows alone
    np.testing.assert_allclose(only.loc[day].to_numpy(), full.loc[day].to_numpy(), rtol=0, atol=1e-12)
    too_short = library(window[window["date"] > window["date"].min()]).set_index(["date", "ticker"])
    assert too_short.loc[day, "a158_roc60"].isna().all()  # 60 sessions are not enough for the 60-session window


def test_each_day_is_normalized_across_its_tickers(bars):
    table = library(bars).set_index(["date", "ticker"])
    day = table.loc[pd.Timestamp("2014-03-03")]
    assert day.abs().max().max() <= alpha.CLIP and day.notna().all().all()
    values = pd.DataFrame({"a": [0.2, 0.2, 0.2, 0.4, 0.6, 0.2], "b": [1.0, 2, 3, 4, 5, 6]}).T
    z = alpha.cross_sectional_robust_z(values)
    spread_a = values.loc["a"].std(ddof=0)  # most names share the median: MAD 0, the standard deviation scales
    np.testing.assert_allclose(z.loc["a"], (values.loc["a"] - 0.2) / spread_a)
    mad_b = 1.4826 * (values.loc["b"] - 3.5).abs().median()
    np.testing.assert_allclose(z.loc["b"], ((values.loc["b"] - 3.5) / mad_b).clip(-3, 3))
    constant = alpha.cross_sectional_robust_z(pd.DataFrame([[1.0] * 6]))
    assert (constant == 0).all().all()
    few = library(bars[bars["ticker"].isin(["AAPL", "XOM", "JPM", "KO"])])
    assert few[alpha.ALPHA_COLUMNS].isna().all().all()  # 4 names are too few for a cross-section
