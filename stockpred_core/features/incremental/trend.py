"""Trend steps: TA-Lib's SMA, EMA, MACD and ADX (with +DI and -DI) advanced by one row of one ticker.

Each step repeats, for row i of the ticker's complete rows, the operations the batch kernel of the same name
(`features/kernels/trend.py`) performs for that row, in the same order, so the running values stay bit-equal.
`s` is the step's slice of the ticker's state; every slot starts at 0.0.
"""

import numpy as np

from stockpred_core.features.incremental.volatility import true_range
from stockpred_core.features.kernels.jit import EPSILON, fma, jit


@jit
def sma_step(s, ring, i, n):
    """TA_INT_SMA's running total (s: [total]); `ring` holds the last len(ring) >= n values, row i's at i % len."""
    s[0] += ring[i % len(ring)]
    if i < n - 1:
        return np.nan
    value = s[0] / n
    s[0] -= ring[(i - n + 1) % len(ring)]
    return value


@jit
def ema_step(s, i, x, n, k, start):
    """TA_INT_EMA from row `start` (s: [seed total, value]): the mean of the n rows up to it, then (x - y) * k + y."""
    if i < start - n + 1:
        return np.nan
    if i <= start:
        s[0] += x
        if i < start:
            return np.nan
        s[1] = s[0] / n
        return s[1]
    s[1] = fma(x - s[1], k, s[1])
    return s[1]


@jit
def macd_step(s, i, x, fast, slow, signal, y):
    """TA-Lib MACD (s: 3 EMA states; y: line, signal, histogram): both EMAs start on the slow one's first row, the
    signal is an EMA of the line from there, and all three outputs start with the signal."""
    start = slow - 1
    fast_value = ema_step(s[0:2], i, x, fast, 2.0 / (fast + 1), start)
    slow_value = ema_step(s[2:4], i, x, slow, 2.0 / (slow + 1), start)
    if i < start:
        return
    line = fast_value - slow_value
    sig = ema_step(s[4:6], i - start, line, signal, 2.0 / (signal + 1), signal - 1)
    if i >= slow + signal - 2:
        y[0], y[1], y[2] = line, sig, line - sig


@jit
def adx_step(s, i, high, low, close, prev_high, prev_low, prev_close, n, y):
    """TA-Lib ADX, PLUS_DI, MINUS_DI (s: +DM, -DM, TR, DX total, ADX; y: adx, plus_di, minus_di): Wilder's running
    sums, DI from row n, the first ADX (row 2n-1) the mean of n DX values; zero-range rows add nothing."""
    if i == 0:
        return
    up, down = high - prev_high, prev_low - low
    if i >= n:
        s[0] -= s[0] / n
        s[1] -= s[1] / n
    s[1] += down if down > 0 and up < down else 0.0
    s[0] += up if up > 0 and up > down else 0.0
    move = true_range(high, low, prev_close)
    s[2] = s[2] - s[2] / n + move if i >= n else s[2] + move
    if i < n:
        return
    dx = np.nan
    y[1] = y[2] = 0.0
    if s[2] > 0.0:
        y[1] = 100.0 * (s[0] / s[2])
        y[2] = 100.0 * (s[1] / s[2])
        di_sum = y[2] + y[1]
        if abs(di_sum) >= EPSILON:
            dx = 100.0 * (abs(y[2] - y[1]) / di_sum)
    if i < 2 * n - 1:
        s[3] += 0.0 if np.isnan(dx) else dx
        return
    if i == 2 * n - 1:
        s[4] = (s[3] + (0.0 if np.isnan(dx) else dx)) / n
    elif not np.isnan(dx):
        s[4] = (s[4] * (n - 1) + dx) / n
    y[0] = s[4]
