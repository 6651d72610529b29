"""Trend kernels: TA-Lib's SMA, EMA, MACD and ADX (with +DI and -DI) on one ticker's contiguous rows."""

import numpy as np

from stockpred_core.features.kernels.jit import EPSILON, fma, jit
from stockpred_core.features.kernels.volatility import true_range


@jit
def sma(x, n, y):
    """TA_INT_SMA: a running total that adds the new value, is read, then drops the oldest."""
    if len(x) < n:
        return
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    for i in range(n - 1, len(x)):
        total += x[i]
        y[i] = total / n
        total -= x[i - n + 1]


@jit
def ema(x, n, k, start, y):
    """TA_INT_EMA from row `start`: seeded with the mean of the n rows up to it, then y = (x - y) * k + y."""
    if start >= len(x):
        return
    total = 0.0
    for i in range(start - n + 1, start + 1):
        total += x[i]
    value = total / n
    y[start] = value
    for i in range(start + 1, len(x)):
        value = fma(x[i] - value, k, value)
        y[i] = value


@jit
def macd(x, fast, slow, signal, y):
    """TA-Lib MACD (outputs: line, signal, histogram): both EMAs start on the slow EMA's first row, the fast one seeded
    with its own last `fast` rows; the signal is an EMA of the line; all three start with the signal. The histogram
    row holds the slow EMA until the end."""
    start, first = slow - 1, slow + signal - 2
    if first >= len(x):
        return
    line, sig, hist = y[0], y[1], y[2]
    ema(x, fast, 2.0 / (fast + 1), start, line)
    ema(x, slow, 2.0 / (slow + 1), start, hist)
    for i in range(start, len(x)):
        line[i] -= hist[i]
    ema(line, signal, 2.0 / (signal + 1), first, sig)
    for i in range(first, len(x)):
        hist[i] = line[i] - sig[i]
    line[:first] = np.nan
    hist[:first] = np.nan


@jit
def adx(high, low, close, n, y):
    """TA-Lib ADX, PLUS_DI and MINUS_DI (outputs 0, 1, 2): Wilder's running sums S -= S/n; S += x of TR, +DM and -DM,
    seeded with the sum of rows 1..n-1; DI from row n; the first ADX (row 2n-1) is the mean of n DX values."""
    m = len(close)
    if m <= n:
        return
    plus_dm = minus_dm = tr = dx_sum = average = 0.0
    for i in range(1, m):
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        if i >= n:
            plus_dm -= plus_dm / n
            minus_dm -= minus_dm / n
        # +DM is the up-move when positive and larger than the down-move, -DM the other way round (never both).
        minus_dm += down if down > 0 and up < down else 0.0
        plus_dm += up if up > 0 and up > down else 0.0
        move = true_range(high, low, close, i)
        tr = tr - tr / n + move if i >= n else tr + move
        if i < n:
            continue
        # TA-Lib skips a row whose TR sum is zero (DI reads 0) or whose DI sum is within TA_EPSILON of zero: the row
        # adds nothing to the ADX.
        dx = np.nan
        y[1, i] = y[2, i] = 0.0
        if tr > 0.0:
            y[1, i] = 100.0 * (plus_dm / tr)
            y[2, i] = 100.0 * (minus_dm / tr)
            di_sum = y[2, i] + y[1, i]
            if abs(di_sum) >= EPSILON:
                dx = 100.0 * (abs(y[2, i] - y[1, i]) / di_sum)
        if i < 2 * n - 1:
            dx_sum += 0.0 if np.isnan(dx) else dx
            continue
        if i == 2 * n - 1:
            average = (dx_sum + (0.0 if np.isnan(dx) else dx)) / n
        elif not np.isnan(dx):
            average = (average * (n - 1) + dx) / n
        y[0, i] = average
