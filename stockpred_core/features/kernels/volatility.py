"""Volatility kernels: TA-Lib's true range, ATR and Bollinger Bands on one ticker's contiguous rows."""

import numpy as np

from stockpred_core.features.kernels.jit import fma, jit


@jit
def true_range(high, low, close, i):
    """TA-Lib's TRUE_RANGE of row i against the previous close."""
    out = high[i] - low[i]
    out = max(out, abs(high[i] - close[i - 1]))
    return max(out, abs(low[i] - close[i - 1]))


@jit
def atr(high, low, close, n, y):
    """TA-Lib ATR: the mean of the first n true ranges (rows 1..n), then Wilder's step as two coefficients,
    ATR = a * TR + b * ATR with b = (n-1)/n and a = 1 - b."""
    if len(close) <= n:
        return
    value = 0.0
    for i in range(1, n + 1):
        value += true_range(high, low, close, i)
    value /= n
    y[n] = value
    beta = (n - 1) / n
    alpha = 1.0 - beta
    for i in range(n + 1, len(close)):
        value = fma(beta, value, alpha * true_range(high, low, close, i))
        y[i] = value


@jit
def _shifted_moments(x, end, n, shift):
    """Sum and sum of squares of x - shift over the n rows ending at `end`."""
    total = squares = 0.0
    for j in range(end - n + 1, end + 1):
        d = x[j] - shift
        total += d
        squares += d * d
    return total, squares


@jit
def bollinger(x, n, k, y):
    """TA-Lib BBANDS (SMA): middle = running-total SMA; deviation from running totals of x - shift, where the shift is
    re-anchored on the window mean whenever the totals go stale (TA-Lib's cancellation-free variance). Outputs: middle,
    upper, lower, %b, width."""
    if len(x) < n:
        return
    inv = 1.0 / n
    shift = x[0]
    ma_total, var1, var2 = 0.0, 0.0, 0.0
    for j in range(n - 1):
        ma_total += x[j]
        d = x[j] - shift
        var1 += d
        var2 += d * d
    since_reseed = 32 * n
    for i in range(n - 1, len(x)):
        ma_total += x[i]
        d = x[i] - shift
        var1 += d
        var2 += d * d
        mean1 = var1 * inv
        variance = var2 * inv - mean1 * mean1
        middle = ma_total / n
        ma_total -= x[i - n + 1]
        d = x[i - n + 1] - shift
        var1 -= d
        d *= d
        var2 -= d
        since_reseed -= 1
        if variance < 0.000001 * (var2 * inv) or d > 1000000.0 * var2 or since_reseed <= 0:
            since_reseed = 32 * n
            shift = 0.0
            for j in range(i - n + 1, i + 1):
                shift += x[j]
            shift *= inv
            var1, var2 = _shifted_moments(x, i, n, shift)
            mean1 = var1 * inv
            variance = var2 * inv - mean1 * mean1
            if variance < 0.000000000001 * (var2 * inv):
                variance = 0.0
            d = x[i - n + 1] - shift
            var1 -= d
            var2 -= d * d
        spread = k * (np.sqrt(variance) if variance != 0.0 else 0.0)
        y[0, i], y[1, i], y[2, i] = middle, middle + spread, middle - spread
        width = y[1, i] - y[2, i]
        y[3, i] = (x[i] - y[2, i]) / width if width != 0.0 else np.nan
        y[4, i] = width / middle if middle != 0.0 else np.nan
