"""The incremental standard set against `indicator_set`: warm-started on part of the bars, streamed the rest in
batches, every value returned must equal the batch value on the same bars, bit for bit (the steps repeat the batch
kernels' operations in their order; the requirement is 1e-9). Real Lean minute bars of four tickers, simulated daily
bars with gaps, a late listing and halts (flat prices, no volume: TA-Lib's zero-range branches), and random series
with coarse ticks and frequent ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import SHARED_DATA

from stockpred_core.data.simulation import simulate_bars
from stockpred_core.features.incremental import IncrementalIndicators
from stockpred_core.features.indicators import indicator_set

LEAN = SHARED_DATA / "intraday" / "lean" / "minute"
FIELDS = ["high", "low", "close", "volume"]
NAMES = list(IncrementalIndicators.names)


def stream(frames: list[pd.DataFrame], warm: int, rows_per_batch: int = 1, seed: int = 0):
    """Warm start on the first `warm` rows, then update with the bars of `rows_per_batch` rows at a time (in time
    order, tickers shuffled within a row), asserting that tickers without a bar do not move. Returns the indicators
    and the values the updates returned, on the frames' grid (outputs x rows x tickers; NaN where no bar)."""
    inc = IncrementalIndicators.from_history(*(f.iloc[:warm] for f in frames))
    data = [f.to_numpy(dtype=np.float64) for f in frames]
    got = np.full((len(NAMES), *data[0].shape), np.nan)
    rng = np.random.default_rng(seed)
    for start in range(warm, len(frames[0]), rows_per_batch):
        rows, tickers = [], []
        for r in range(start, min(start + rows_per_batch, len(frames[0]))):
            present = rng.permutation(np.flatnonzero(~np.isnan(data[2][r])))
            rows += [r] * len(present)
            tickers += list(present)
        rows, tickers = np.asarray(rows, dtype=np.int64), np.asarray(tickers, dtype=np.int64)
        idle = np.setdiff1d(np.arange(data[0].shape[1]), tickers)
        before = inc.state[idle].copy(), inc.count[idle].copy(), inc.values[idle].copy()
        out = inc.update(tickers, *(d[rows, tickers] for d in data))
        got[:, rows, tickers] = out.T
        np.testing.assert_array_equal(inc.state[idle], before[0])
        np.testing.assert_array_equal(inc.count[idle], before[1])
        np.testing.assert_array_equal(inc.values[idle], before[2])
    return inc, got


def assert_equals_batch(frames: list[pd.DataFrame], warm: int, rows_per_batch: int = 1) -> dict[str, pd.DataFrame]:
    """Stream the frames and compare every returned value (and the final state's values) with the batch's."""
    inc, got = stream(frames, warm, rows_per_batch)
    batch = indicator_set(*frames)
    has_bar = frames[2].notna().to_numpy()
    for o, name in enumerate(NAMES):
        expected = batch[name].to_numpy()
        np.testing.assert_allclose(got[o, warm:], expected[warm:], rtol=1e-9, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(got[o, warm:], np.where(has_bar, expected, np.nan)[warm:], err_msg=name)
    # A ticker's latest values are those of its last complete bar (warm-up NaN included); NaN before any.
    last = pd.DataFrame(np.nan, index=frames[2].columns, columns=NAMES)
    high, low, close, volume = (f.notna() for f in frames)
    complete = high & low & close & volume
    for ticker, row in complete.apply(lambda s: s[s].last_valid_index()).dropna().items():
        last.loc[ticker] = [batch[name].at[row, ticker] for name in NAMES]
    pd.testing.assert_frame_equal(inc.latest(), last, check_names=False, rtol=0, atol=0, check_exact=True)
    return batch


def lean_frames(symbols: list[str], days: list[str]) -> list[pd.DataFrame]:
    """Wide (minute x symbol) high, low, close, volume of Lean's trade bars; no row where a symbol did not trade."""
    parts = []
    for symbol in symbols:
        for day in days:
            names = ["ms", "open", "high", "low", "close", "volume"]
            bars = pd.read_csv(LEAN / symbol / f"{day}_trade.zip", header=None, names=names)
            bars["ts"] = pd.Timestamp(day) + pd.to_timedelta(bars.pop("ms"), unit="ms")
            bars[["high", "low", "close"]] /= 10_000.0
            parts.append(bars.assign(symbol=symbol))
    bars = pd.concat(parts)
    return [bars.pivot(index="ts", columns="symbol", values=f).sort_index().astype(float) for f in FIELDS]


@pytest.mark.skipif(not LEAN.is_dir(), reason="the Lean minute bars are not in ../shared/data")
@pytest.mark.parametrize("minutes_per_batch", [1, 15])
def test_real_lean_minute_sessions_streamed_after_a_warm_start_equal_the_batch(minutes_per_batch):
    frames = lean_frames(["spy", "aig", "bac", "ibm"], ["20131004", "20131007", "20131008", "20131009"])
    warm = int((frames[0].index < "2013-10-08").sum())  # two sessions of history, two streamed
    assert frames[2].iloc[warm:].isna().any().all()  # every symbol has minutes without a trade
    batch = assert_equals_batch(frames, warm, minutes_per_batch)
    assert batch["adx_14"].iloc[warm:].notna().to_numpy().mean() > 0.5


def simulated_frames(tickers: int = 24, seed: int = 11) -> list[pd.DataFrame]:
    bars = simulate_bars(seed, tickers, "2020-01-01", "2021-03-31")
    frames = [bars.pivot(index="date", columns="ticker", values=f).astype(float) for f in FIELDS]
    rng = np.random.default_rng(seed)
    gaps = rng.random(frames[0].shape) < 0.08
    gaps[:, 0] = False
    gaps[200:240, 6] = True  # a ticker missing 40 sessions in a row
    gaps[:230, 5] = True  # a late listing: its first bar arrives while streaming
    for f in frames:
        f[gaps] = np.nan
    halted = {1: slice(150, 230), 2: slice(0, 70), 3: slice(100, None)}  # mid-stream, from the first bar, to the end
    for column, rows in halted.items():
        first = frames[2].iloc[:, column].iloc[rows].first_valid_index()
        price = frames[2].iloc[:, column].ffill().at[first]
        for f, value in zip(frames, [price, price, price, 0.0], strict=True):
            f.iloc[rows, column] = f.iloc[rows, column].where(f.iloc[rows, column].isna(), value)
    frames[3].iloc[260, 7] = np.nan  # a bar without its volume is left out, as the batch leaves out the row
    return frames


@pytest.mark.parametrize("rows_per_batch", [1, 7])
def test_simulated_bars_with_gaps_a_late_listing_and_halts_equal_the_batch(rows_per_batch):
    frames = simulated_frames()
    batch = assert_equals_batch(frames, warm=120, rows_per_batch=rows_per_batch)
    # A halt reaches TA-Lib's zero branches: no money flow, flat bands, a %K of (nearly: SMA residue) 0 ...
    halt = {name: batch[name].iloc[200:230, 1].dropna() for name in NAMES}
    assert halt["cmf_20"].empty and halt["bb_pctb"].empty and halt["stoch_k"].abs().max() < 1e-12
    assert len(halt["bb_width"]) > 20 and (halt["bb_width"] == 0).all()
    # ... and from a ticker's first bar: no move for RSI, no true range for the DIs and ADX, an exact 0 %K.
    flat = {name: batch[name].iloc[:70, 2].dropna() for name in NAMES}
    for name in ["rsi_14", "stoch_k", "stoch_d", "plus_di_14", "minus_di_14", "adx_14", "atr_14", "bb_width"]:
        assert len(flat[name]) > 20 and (flat[name] == 0).all(), name
    assert batch["adx_14"].iloc[235:, 5].notna().any()  # the late listing warmed up on streamed bars alone


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(1, 140),
    tick=st.sampled_from([0.01, 0.5, 1.0]),
    warm_share=st.floats(0.0, 1.0),
    rows_per_batch=st.integers(1, 9),
)
def test_random_series_with_ties_and_empty_volume_equal_the_batch(seed, length, tick, warm_share, rows_per_batch):
    rng = np.random.default_rng(seed)
    close = np.maximum(tick, np.round((100 + np.cumsum(rng.normal(0, 1, (length, 3)), axis=0)) / tick) * tick)
    high = close + tick * rng.integers(0, 3, close.shape)
    low = np.maximum(tick / 2, close - tick * rng.integers(0, 3, close.shape))
    volume = rng.integers(0, 4, close.shape) * (rng.random(close.shape) < 0.6) * 100.0
    frames = [pd.DataFrame(a, columns=["A", "B", "C"]) for a in (high, low, close, volume)]
    for f in frames:
        f[rng.random(close.shape) < 0.1] = np.nan
    assert_equals_batch(frames, int(warm_share * length), rows_per_batch)


def test_each_output_starts_on_the_row_ta_lib_starts_it():
    rng = np.random.default_rng(3)
    close = 50 + np.cumsum(rng.normal(0, 1, 60))
    inc = IncrementalIndicators(["X"])
    out = np.vstack([inc.update([0], [c + 1], [c - 1], [c], [1000.0]) for c in close])
    first = {name: int(np.flatnonzero(~np.isnan(out[:, o]))[0]) for o, name in enumerate(NAMES)}
    assert first == {
        **dict.fromkeys(["rsi_14", "plus_di_14", "minus_di_14", "atr_14"], 14),
        **dict.fromkeys(["macd", "macd_signal", "macd_hist"], 33),
        **dict.fromkeys(["stoch_k", "stoch_d"], 17),
        **dict.fromkeys(["bb_middle", "bb_upper", "bb_lower", "bb_pctb", "bb_width", "cmf_20", "sma_20"], 19),
        **{"sma_10": 9, "sma_50": 49, "ema_12": 11, "ema_26": 25, "adx_14": 27, "obv": 0},
    }


def test_small_series_by_hand():
    inc = IncrementalIndicators(["A", "B"])
    closes, volumes = [10.0, 11.0, 11.0, 10.0], [5.0, 7.0, 3.0, 2.0]
    obv = [inc.update([1], [c], [c], [c], [v])[0, NAMES.index("obv")] for c, v in zip(closes, volumes, strict=True)]
    assert obv == [5.0, 12.0, 12.0, 10.0]
    assert inc.count.tolist() == [0, 4] and np.isnan(inc.values[0]).all()
    for c in range(5, 15):
        sma = inc.update([0], [c], [c], [float(c)], [1.0])[0, NAMES.index("sma_10")]
    assert sma == 9.5  # the mean of 5..14


def test_a_universe_wider_than_the_history_and_bad_input():
    frames = [pd.DataFrame({"A": [1.0, 2.0], "B": [3.0, np.nan]}) for _ in FIELDS]
    inc = IncrementalIndicators.from_history(*frames, tickers=["B", "C", "A"])
    assert inc.count.tolist() == [1, 0, 2] and inc.positions(["A", "C"]).tolist() == [2, 1]
    assert inc.latest().loc["A", "obv"] == 3.0
    with pytest.raises(KeyError, match="Z"):
        inc.positions(["A", "Z"])
    with pytest.raises(IndexError):
        inc.update([3], [1.0], [1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="equal length"):
        inc.update([0, 1], [1.0], [1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="twice"):
        IncrementalIndicators(["A", "A"])
