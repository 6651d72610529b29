"""Indicators vs TA-Lib on the real S&P 500 file, and what they do with late listings, gaps and zero volume.

TA-Lib runs ticker by ticker on each ticker's own rows; ours runs on the wide frames of all 505 tickers at once. The 11
rows of the file that lack open/high/low are dropped whole (one-day gaps for BHF, DHR, ES, FTV, O, REGN, UA, VRTX and
WRK), so both sides see the same rows. Every output is compared on every row with no extra warm-up: the seeding is
TA-Lib's, so values agree from TA-Lib's first one, and the warm-up rows must be NaN exactly where TA-Lib's are. Values
agree within 1e-8: absolute up to 1, relative beyond (prices, volumes, OBV).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred_core.features import indicators as ind

talib = pytest.importorskip("talib")

FIELDS = ["high", "low", "close", "volume"]

# TA-Lib's outputs, one function call per ticker: name -> (call on (high, low, close, volume), output index or None).
TALIB = {
    "rsi_14": (lambda h, lo, c, v: talib.RSI(c, 14), None),
    "macd": (lambda h, lo, c, v: talib.MACD(c, 12, 26, 9), 0),
    "macd_signal": (lambda h, lo, c, v: talib.MACD(c, 12, 26, 9), 1),
    "macd_hist": (lambda h, lo, c, v: talib.MACD(c, 12, 26, 9), 2),
    "stoch_k": (lambda h, lo, c, v: talib.STOCH(h, lo, c, 14, 3, 0, 3, 0), 0),
    "stoch_d": (lambda h, lo, c, v: talib.STOCH(h, lo, c, 14, 3, 0, 3, 0), 1),
    "sma_10": (lambda h, lo, c, v: talib.SMA(c, 10), None),
    "sma_20": (lambda h, lo, c, v: talib.SMA(c, 20), None),
    "sma_50": (lambda h, lo, c, v: talib.SMA(c, 50), None),
    "ema_12": (lambda h, lo, c, v: talib.EMA(c, 12), None),
    "ema_26": (lambda h, lo, c, v: talib.EMA(c, 26), None),
    "adx_14": (lambda h, lo, c, v: talib.ADX(h, lo, c, 14), None),
    "plus_di_14": (lambda h, lo, c, v: talib.PLUS_DI(h, lo, c, 14), None),
    "minus_di_14": (lambda h, lo, c, v: talib.MINUS_DI(h, lo, c, 14), None),
    "bb_upper": (lambda h, lo, c, v: talib.BBANDS(c, 20, 2.0, 2.0, 0), 0),
    "bb_middle": (lambda h, lo, c, v: talib.BBANDS(c, 20, 2.0, 2.0, 0), 1),
    "bb_lower": (lambda h, lo, c, v: talib.BBANDS(c, 20, 2.0, 2.0, 0), 2),
    "atr_14": (lambda h, lo, c, v: talib.ATR(h, lo, c, 14), None),
    "obv": (lambda h, lo, c, v: talib.OBV(c, v), None),
    "true_range": (lambda h, lo, c, v: talib.TRANGE(h, lo, c), None),
}


def talib_outputs(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, (call, index) in TALIB.items():
        result = call(h, lo, c, v)
        out[name] = result if index is None else result[index]
    return out


def single_functions(h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame, v: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every public single-indicator function, under the names of TALIB (plus %b, width and CMF)."""
    macd, stoch, adx, bands = ind.macd(c), ind.stochastic(h, lo, c), ind.adx(h, lo, c), ind.bollinger(c)
    return {
        "rsi_14": ind.rsi(c),
        **macd,
        **stoch,
        **{f"sma_{n}": ind.sma(c, n) for n in (10, 20, 50)},
        **{f"ema_{n}": ind.ema(c, n) for n in (12, 26)},
        "adx_14": adx["adx"],
        "plus_di_14": adx["plus_di"],
        "minus_di_14": adx["minus_di"],
        **bands,
        "atr_14": ind.atr(h, lo, c),
        "obv": ind.obv(c, v),
        "true_range": ind.true_range(h, lo, c),
        "cmf_20": ind.cmf(h, lo, c, v),
    }


def assert_equal_to_talib(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    """NaN exactly where TA-Lib has NaN; elsewhere within 1e-8 (absolute up to 1, relative beyond)."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{label}: warm-up differs from TA-Lib")
    both = ~np.isnan(theirs)
    error = np.abs(ours[both] - theirs[both]) / np.maximum(1.0, np.abs(theirs[both]))
    assert error.max(initial=0.0) <= 1e-8, f"{label}: off TA-Lib by {error.max():.3g} (relative beyond 1)"


def wide_frames(bars: pd.DataFrame) -> list[pd.DataFrame]:
    return [bars.pivot(index="date", columns="ticker", values=f).sort_index().astype(float) for f in FIELDS]


def one_ticker(values: dict[str, np.ndarray]) -> list[pd.DataFrame]:
    return [pd.DataFrame({"X": values[f]}) for f in FIELDS]


# --- the real S&P 500 file, every ticker ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sp500(shared_data) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz", parse_dates=["date"])
    bars = raw.rename(columns={"Name": "ticker"}).dropna(subset=["open", "high", "low", "close"])
    assert len(raw) - len(bars) == 11 and bars["ticker"].nunique() == 505
    return bars.sort_values(["ticker", "date"], ignore_index=True)


@pytest.fixture(scope="module")
def sp500_wide(sp500) -> list[pd.DataFrame]:
    return wide_frames(sp500)


@pytest.fixture(scope="module")
def ours(sp500_wide) -> dict[str, np.ndarray]:
    return {name: frame.to_numpy() for name, frame in single_functions(*sp500_wide).items()}


@pytest.fixture(scope="module")
def theirs(sp500, sp500_wide) -> list[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    """(column, rows of the ticker on the wide grid, TA-Lib outputs on those rows) for every ticker."""
    dates, tickers = sp500_wide[0].index, sp500_wide[0].columns
    out = []
    for ticker, rows in sp500.groupby("ticker"):
        values = [rows[f].to_numpy(dtype=float) for f in FIELDS]
        out.append((tickers.get_loc(ticker), dates.get_indexer(rows["date"]), talib_outputs(*values)))
    return out


@pytest.mark.parametrize("name", list(TALIB))
def test_equal_to_talib_on_every_sp500_ticker(name, ours, theirs):
    mine = ours[name]
    for column, rows, reference in theirs:
        assert_equal_to_talib(mine[rows, column], reference[name], f"{name} column {column}")
        absent = np.setdiff1d(np.arange(len(mine)), rows)
        assert np.isnan(mine[absent, column]).all(), f"{name}: a value on a row the ticker lacks"


def test_the_file_has_late_listings_and_gaps_that_the_comparison_covers(sp500_wide):
    close = sp500_wide[2]
    first = close.notna().to_numpy().argmax(axis=0)
    assert (first > 0).sum() >= 29  # tickers listed after the file's first session
    inside = close.apply(lambda s: s.loc[s.first_valid_index() :].isna().sum())
    assert (inside > 0).sum() >= 9  # tickers with a missing session after their first one


def test_indicator_set_equals_the_single_functions(sp500_wide, ours):
    both = ind.indicator_set(*sp500_wide)
    assert list(both) == ind.STANDARD_SET
    for name, frame in both.items():
        np.testing.assert_array_equal(frame.to_numpy(), ours[name], err_msg=name)
        assert frame.index.equals(sp500_wide[0].index) and frame.columns.equals(sp500_wide[0].columns)


def test_cmf_is_its_definition_computed_naively(sp500):
    for _, bars in list(sp500.groupby("ticker"))[::10]:
        h, lo, c, v = (bars[f].reset_index(drop=True) for f in FIELDS)
        multiplier = ((c - lo) - (h - c)) / (h - lo)
        naive = (multiplier.where(h != lo, 0.0) * v).rolling(20).sum() / v.rolling(20).sum()
        ours_cmf = ind.cmf(*(s.to_frame("X") for s in (h, lo, c, v)))["X"]
        np.testing.assert_allclose(ours_cmf, naive, rtol=1e-9, atol=1e-12)


# --- late listings, gaps, incomplete rows (synthetic, no shared data needed) ------------------------------------------


def random_bars(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, rows)))
    spread = close * rng.uniform(0.002, 0.03, rows)
    high, low = close + spread * rng.uniform(0, 1, rows), close - spread * rng.uniform(0, 1, rows)
    return {"high": high, "low": low, "close": close, "volume": rng.integers(1_000, 1_000_000, rows).astype(float)}


@pytest.fixture(scope="module")
def panel() -> list[pd.DataFrame]:
    """Three tickers over 400 sessions: A complete, B listed on row 150, C missing rows 200-202 (all four fields)."""
    dates = pd.bdate_range("2020-01-01", periods=400)
    series = {t: random_bars(400, seed) for seed, t in enumerate("ABC")}
    frames = [pd.DataFrame({t: series[t][f] for t in "ABC"}, index=dates) for f in FIELDS]
    for frame in frames:
        frame.loc[dates[:150], "B"] = np.nan
        frame.loc[dates[200:203], "C"] = np.nan
    return frames


@pytest.mark.parametrize("ticker", ["A", "B", "C"])
def test_each_ticker_is_talib_on_its_own_rows(panel, ticker):
    """A late listing starts as if its series began there; a gap's rows are left out and the series runs on."""
    outputs = single_functions(*panel)
    rows = np.flatnonzero(panel[2][ticker].notna().to_numpy())
    reference = talib_outputs(*(frame[ticker].to_numpy()[rows] for frame in panel))
    for name, expected in reference.items():
        values = outputs[name][ticker].to_numpy()
        assert_equal_to_talib(values[rows], expected, f"{name} {ticker}")
        assert np.isnan(np.delete(values, rows)).all(), f"{name} {ticker}: a value on a missing row"


def test_a_row_missing_only_its_high_is_left_out_of_the_indicators_that_read_high(panel):
    h, lo, c, v = (frame[["A"]].copy() for frame in panel)
    h.iloc[300] = np.nan
    rows = np.delete(np.arange(len(c)), 300)
    expected = talib_outputs(*(f["A"].to_numpy()[rows] for f in panel))
    for name, values in [("atr_14", ind.atr(h, lo, c)), ("adx_14", ind.adx(h, lo, c)["adx"])]:
        assert np.isnan(values["A"].iloc[300])
        assert_equal_to_talib(values["A"].to_numpy()[rows], expected[name], name)
    # indicator_set reads all four inputs for every indicator: the row is left out of its close-only ones too.
    together = ind.indicator_set(h, lo, c, v)["rsi_14"]["A"].to_numpy()
    assert np.isnan(together[300])
    assert_equal_to_talib(together[rows], expected["rsi_14"], "rsi_14")


def test_zero_volume_gives_no_cmf_and_no_garbage():
    bars = random_bars(120, seed=5)
    bars["volume"][40:70] = 0.0
    h, lo, c, v = one_ticker(bars)
    flow, balance = ind.cmf(h, lo, c, v)["X"], ind.obv(c, v)["X"]
    windows_without_volume = np.arange(40 + 19, 70)
    assert flow.iloc[windows_without_volume].isna().all()  # no volume traded in those 20 rows: no money flow to read
    assert flow.drop(flow.index[windows_without_volume]).iloc[19:].notna().all()
    assert np.isfinite(flow.dropna()).all() and flow.dropna().between(-1.0, 1.0).all()
    assert_equal_to_talib(balance.to_numpy(), talib.OBV(bars["close"], bars["volume"]), "obv")
    assert (balance.iloc[40:70].diff().iloc[1:] == 0.0).all()


def test_a_bar_without_range_has_no_money_flow():
    bars = random_bars(40, seed=6)
    bars["high"][25] = bars["low"][25] = bars["close"][25]
    h, lo, c, v = one_ticker(bars)
    span = bars["high"] - bars["low"]
    flow = np.zeros(40)
    np.divide((bars["close"] - bars["low"]) - (bars["high"] - bars["close"]), span, out=flow, where=span != 0.0)
    flow *= bars["volume"]
    expected = pd.Series(flow).rolling(20).sum() / pd.Series(bars["volume"]).rolling(20).sum()
    np.testing.assert_allclose(ind.cmf(h, lo, c, v)["X"], expected, rtol=1e-12)


def test_flat_prices_read_as_talib_reads_them():
    bars = {f: np.full(80, 25.0) for f in FIELDS}
    bars["volume"] = np.full(80, 1000.0)
    outputs = single_functions(*one_ticker(bars))
    for name, expected in talib_outputs(*(bars[f] for f in FIELDS)).items():
        assert_equal_to_talib(outputs[name]["X"].to_numpy(), expected, name)
    assert (outputs["rsi_14"]["X"].dropna() == 0.0).all() and (outputs["stoch_k"]["X"].dropna() == 0.0).all()
    assert outputs["bb_pctb"]["X"].isna().all() and (outputs["bb_width"]["X"].dropna() == 0.0).all()


def test_a_series_quoted_far_below_one_reads_as_talib_reads_it():
    """TA-Lib's zero tests are exact or scale-free, so oscillators of a tiny quote are not zeroed."""
    bars = random_bars(120, seed=8)
    for field in ("high", "low", "close"):
        bars[field] = bars[field] * 1e-16
    outputs = single_functions(*one_ticker(bars))
    for name, expected in talib_outputs(*(bars[f] for f in FIELDS)).items():
        assert_equal_to_talib(outputs[name]["X"].to_numpy(), expected, name)
    assert outputs["adx_14"]["X"].dropna().gt(0.0).all() and outputs["rsi_14"]["X"].dropna().gt(0.0).all()


def test_history_shorter_than_the_warm_up_is_all_nan_and_an_empty_frame_stays_empty():
    short = one_ticker(random_bars(12, seed=7))
    for name, frame in single_functions(*short).items():
        if name not in ("true_range", "obv", "sma_10", "ema_12"):
            assert frame["X"].isna().all(), name
    empty = [pd.DataFrame(index=pd.DatetimeIndex([]), columns=pd.Index([], name="ticker"), dtype=float)] * 4
    assert all(frame.shape == (0, 0) for frame in ind.indicator_set(*empty).values())


def test_frames_are_aligned_on_the_first_one(panel):
    h, lo, c, _ = panel
    shuffled = lo[["C", "A", "B"]].iloc[::-1]
    pd.testing.assert_frame_equal(ind.atr(h, shuffled, c), ind.atr(h, lo, c))


def test_bad_periods_are_refused(panel):
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd(panel[2], fast=26, slow=12)
    with pytest.raises(ValueError, match="at least 1"):
        ind.sma(panel[2], 0)
