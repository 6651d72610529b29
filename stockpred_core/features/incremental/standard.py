"""The standard set (`indicators.indicator_set`) as one state row per ticker, advanced one bar at a time.

A ticker's state is one float64 row: the named slices below, scalars first (running totals, seeds, the previous
bar), then rings of the last bars that a window still needs (the indicator's row i sits at i % ring size). Together
with the ticker's count of complete bars so far (the row index i the batch kernels would give the next bar), it is
everything the batch computation carries from one row to the next.
"""

import numpy as np

from stockpred_core.features.incremental.momentum import rsi_step, stoch_step
from stockpred_core.features.incremental.trend import adx_step, ema_step, macd_step, sma_step
from stockpred_core.features.incremental.volatility import atr_step, bollinger_step, true_range
from stockpred_core.features.incremental.volume import cmf_step, obv_step
from stockpred_core.features.kernels.jit import jit
from stockpred_core.features.kernels.panel import STANDARD_SET

NAMES = STANDARD_SET
LAYOUT = {
    "prev": 3,  # the previous bar's high, low, close
    "rsi": 2,
    "macd": 6,
    "stoch": 2,
    "sma_10": 1,
    "sma_20": 1,
    "sma_50": 1,
    "ema_12": 2,
    "ema_26": 2,
    "adx": 5,
    "bbands": 5,
    "atr": 1,
    "obv": 1,
    "cmf": 3,
    "closes": 50,  # SMA 10/20/50 and the Bollinger window read the closes' ring
    "highs": 14,
    "lows": 14,
    "fast_k": 3,
    "slow_k": 3,
    "flows": 20,
    "volumes": 20,
}
SLOTS = {name: int(at) for name, at in zip(LAYOUT, np.cumsum([0, *LAYOUT.values()]), strict=False)}
WIDTH = sum(LAYOUT.values())
PREV, RSI, MACD, STOCH, ATR, OBV, CMF = (SLOTS[n] for n in ("prev", "rsi", "macd", "stoch", "atr", "obv", "cmf"))
SMA_10, SMA_20, SMA_50, EMA_12, EMA_26 = (SLOTS[n] for n in ("sma_10", "sma_20", "sma_50", "ema_12", "ema_26"))
ADX, BBANDS = SLOTS["adx"], SLOTS["bbands"]
CLOSES, HIGHS, LOWS, FLOWS, VOLUMES = (SLOTS[n] for n in ("closes", "highs", "lows", "flows", "volumes"))
FAST_K, SLOW_K = SLOTS["fast_k"], SLOTS["slow_k"]


@jit
def step(s, i, high, low, close, volume, y):
    """Advance one ticker's state row `s` by its complete row i; y (NaN-filled) receives the outputs (NAMES)."""
    closes, highs, lows = s[CLOSES : CLOSES + 50], s[HIGHS : HIGHS + 14], s[LOWS : LOWS + 14]
    closes[i % 50], highs[i % 14], lows[i % 14] = close, high, low
    prev_high, prev_low, prev_close = s[PREV], s[PREV + 1], s[PREV + 2]
    y[0] = rsi_step(s[RSI : RSI + 2], i, close - prev_close, 14)
    macd_step(s[MACD : MACD + 6], i, close, 12, 26, 9, y[1:4])
    fast_ks, slow_ks = s[FAST_K : FAST_K + 3], s[SLOW_K : SLOW_K + 3]
    stoch_step(s[STOCH : STOCH + 2], highs, lows, fast_ks, slow_ks, i, close, 14, 3, 3, y[4:6])
    y[6] = sma_step(s[SMA_10 : SMA_10 + 1], closes, i, 10)
    y[7] = sma_step(s[SMA_20 : SMA_20 + 1], closes, i, 20)
    y[8] = sma_step(s[SMA_50 : SMA_50 + 1], closes, i, 50)
    y[9] = ema_step(s[EMA_12 : EMA_12 + 2], i, close, 12, 2.0 / 13, 11)
    y[10] = ema_step(s[EMA_26 : EMA_26 + 2], i, close, 26, 2.0 / 27, 25)
    adx_step(s[ADX : ADX + 5], i, high, low, close, prev_high, prev_low, prev_close, 14, y[11:14])
    bollinger_step(s[BBANDS : BBANDS + 5], closes, i, 20, 2.0, y[14:19])
    y[19] = atr_step(s[ATR : ATR + 1], i, true_range(high, low, prev_close), 14)
    y[20] = obv_step(s[OBV : OBV + 1], i, close, prev_close, volume)
    flows, volumes = s[FLOWS : FLOWS + 20], s[VOLUMES : VOLUMES + 20]
    y[21] = cmf_step(s[CMF : CMF + 3], flows, volumes, i, high, low, close, volume, 20)
    s[PREV], s[PREV + 1], s[PREV + 2] = high, low, close


@jit
def advance(state, count, values, rows, high, low, close, volume, out):
    """Bar b belongs to ticker rows[b]; bars are applied in order (a ticker listed twice advances twice). A bar
    missing any input is left out, as the batch leaves out an incomplete row: its state stays, its outputs are NaN.
    `values` keeps each ticker's latest outputs."""
    for b in range(len(rows)):
        out[b, :] = np.nan
        h, lo, c, v = high[b], low[b], close[b], volume[b]
        if h != h or lo != lo or c != c or v != v:  # NaN
            continue
        t = rows[b]
        step(state[t], count[t], h, lo, c, v, out[b])
        count[t] += 1
        values[t, :] = out[b]


@jit
def replay(state, count, values, positions, high, low, close, volume):
    """Advance ticker positions[k] through column k of the (rows x columns) inputs, row by row (the warm start)."""
    y = np.empty(values.shape[1])
    for k in range(len(positions)):
        t = positions[k]
        for r in range(close.shape[0]):
            h, lo, c, v = high[r, k], low[r, k], close[r, k], volume[r, k]
            if h != h or lo != lo or c != c or v != v:
                continue
            y[:] = np.nan
            step(state[t], count[t], h, lo, c, v, y)
            count[t] += 1
            values[t, :] = y
