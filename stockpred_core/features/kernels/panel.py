"""Every ticker of a panel through one kernel (or the standard set in one pass): each ticker's complete rows as one
contiguous series."""

import numpy as np

from stockpred_core.features.kernels.jit import jit
from stockpred_core.features.kernels.momentum import rsi, stochastic
from stockpred_core.features.kernels.trend import adx, ema, macd, sma
from stockpred_core.features.kernels.volatility import atr, bollinger, true_range
from stockpred_core.features.kernels.volume import cmf, obv

SMA, EMA, RSI, MACD, STOCH, ADX, TRANGE, ATR, BBANDS, OBV, CMF, STANDARD = range(12)

# Outputs of indicator_set(), in the order _standard_set() writes them.
STANDARD_SET = (
    "rsi_14 macd macd_signal macd_hist stoch_k stoch_d sma_10 sma_20 sma_50 ema_12 ema_26 "
    "adx_14 plus_di_14 minus_di_14 bb_middle bb_upper bb_lower bb_pctb bb_width atr_14 obv cmf_20"
).split()


@jit
def _standard_set(high, low, close, volume, y):
    rsi(close, 14, y[0])
    macd(close, 12, 26, 9, y[1:4])
    stochastic(high, low, close, 14, 3, 3, y[4:6])
    sma(close, 10, y[6])
    sma(close, 20, y[7])
    sma(close, 50, y[8])
    ema(close, 12, 2.0 / 13, 11, y[9])
    ema(close, 26, 2.0 / 27, 25, y[10])
    adx(high, low, close, 14, y[11:14])
    bollinger(close, 20, 2.0, y[14:19])
    atr(high, low, close, 14, y[19])
    obv(close, volume, y[20])
    cmf(high, low, close, volume, 20, y[21])


@jit
def _one(code, x, m, p, y):
    """Run indicator `code` on one ticker's series: the first m columns of x (inputs) into y (outputs)."""
    a, b, c, d = x[0][:m], x[1 % len(x)][:m], x[2 % len(x)][:m], x[3 % len(x)][:m]
    if code == SMA:
        sma(a, int(p[0]), y[0])
    elif code == EMA:
        ema(a, int(p[0]), p[1], int(p[0]) - 1, y[0])
    elif code == RSI:
        rsi(a, int(p[0]), y[0])
    elif code == MACD:
        macd(a, int(p[0]), int(p[1]), int(p[2]), y)
    elif code == STOCH:
        stochastic(a, b, c, int(p[0]), int(p[1]), int(p[2]), y)
    elif code == ADX:
        adx(a, b, c, int(p[0]), y)
    elif code == TRANGE:
        for i in range(1, m):
            y[0, i] = true_range(a, b, c, i)
    elif code == ATR:
        atr(a, b, c, int(p[0]), y[0])
    elif code == BBANDS:
        bollinger(a, int(p[0]), p[1], y)
    elif code == OBV:
        obv(a, b, y[0])
    elif code == CMF:
        cmf(a, b, c, d, int(p[0]), y[0])
    elif code == STANDARD:
        _standard_set(a, b, c, d, y)


@jit
def run_panel(code, inputs, p, out):
    """inputs (tickers, k, rows) and out (tickers, outputs, rows, NaN-filled): each ticker's block is contiguous. A
    ticker's complete rows (all k inputs present) form its series; when a row is incomplete (late listing, gap), the
    complete rows are gathered into one contiguous series and the results written back to their rows."""
    tickers, k, rows = inputs.shape
    at = np.empty(rows, np.int64)
    x = np.empty((k, rows))
    y = np.empty((out.shape[1], rows))
    for t in range(tickers):
        m = 0
        for r in range(rows):
            present = True
            for i in range(k):
                present &= inputs[t, i, r] == inputs[t, i, r]  # False for NaN
            at[m] = r
            m += present
        if m == rows:
            _one(code, inputs[t], m, p, out[t])
            continue
        for i in range(k):
            for j in range(m):
                x[i, j] = inputs[t, i, at[j]]
        y[:, :m] = np.nan
        _one(code, x, m, p, y)
        for o in range(y.shape[0]):
            for j in range(m):
                out[t, o, at[j]] = y[o, j]
