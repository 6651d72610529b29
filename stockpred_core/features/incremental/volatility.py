"""Volatility steps: TA-Lib's true range, ATR and Bollinger Bands advanced by one row of one ticker (as
`kernels/volatility.py`)."""

import numpy as np

from stockpred_core.features.kernels.jit import fma, jit


@jit
def true_range(high, low, prev_close):
    """TA-Lib's TRUE_RANGE of a row against the previous close."""
    out = high - low
    out = max(out, abs(high - prev_close))
    return max(out, abs(low - prev_close))


@jit
def atr_step(s, i, tr, n):
    """TA-Lib ATR (s: [value]): the mean of the true ranges of rows 1..n, then ATR = a * TR + b * ATR."""
    if i == 0:
        return np.nan
    if i <= n:
        s[0] += tr
        if i < n:
            return np.nan
        s[0] /= n
        return s[0]
    beta = (n - 1) / n
    s[0] = fma(beta, s[0], (1.0 - beta) * tr)
    return s[0]


@jit
def _reseed(s, ring, i, n, old):
    """TA-Lib's re-anchoring: shift = the window mean, moments recomputed over the window (O(n)); the variance."""
    size, inv = len(ring), 1.0 / n
    shift = 0.0
    for j in range(i - n + 1, i + 1):
        shift += ring[j % size]
    shift *= inv
    total = squares = 0.0
    for j in range(i - n + 1, i + 1):
        d = ring[j % size] - shift
        total += d
        squares += d * d
    mean1 = total * inv
    variance = squares * inv - mean1 * mean1
    if variance < 0.000000000001 * (squares * inv):
        variance = 0.0
    d = old - shift
    s[0], s[2], s[3], s[4] = shift, total - d, squares - d * d, 32 * n
    return variance


@jit
def bollinger_step(s, ring, i, n, k, y):
    """TA-Lib BBANDS on the SMA (s: shift, SMA total, shifted sum, shifted sum of squares, rows to the next reseed;
    y: middle, upper, lower, %b, width). `ring` holds the last len(ring) >= n closes, row i's included. O(1) per
    row, O(n) on the rows where TA-Lib re-anchors its shift (every 32n rows, or when the totals go stale)."""
    x = ring[i % len(ring)]
    if i == 0:
        s[0], s[4] = x, 32 * n
    s[1] += x
    d = x - s[0]
    s[2] += d
    s[3] += d * d
    if i < n - 1:
        return
    inv = 1.0 / n
    mean1 = s[2] * inv
    variance = s[3] * inv - mean1 * mean1
    middle = s[1] / n
    old = ring[(i - n + 1) % len(ring)]
    s[1] -= old
    d = old - s[0]
    s[2] -= d
    d *= d
    s[3] -= d
    s[4] -= 1
    if variance < 0.000001 * (s[3] * inv) or d > 1000000.0 * s[3] or s[4] <= 0:
        variance = _reseed(s, ring, i, n, old)
    spread = k * (np.sqrt(variance) if variance != 0.0 else 0.0)
    y[0], y[1], y[2] = middle, middle + spread, middle - spread
    width = y[1] - y[2]
    y[3] = (x - y[2]) / width if width != 0.0 else np.nan
    y[4] = width / middle if middle != 0.0 else np.nan
