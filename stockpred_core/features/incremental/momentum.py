"""Momentum steps: TA-Lib's RSI and slow stochastic advanced by one row of one ticker (as `kernels/momentum.py`)."""

import numpy as np

from stockpred_core.features.incremental.trend import sma_step
from stockpred_core.features.kernels.jit import EPSILON, jit


@jit
def rsi_step(s, i, move, n):
    """TA-Lib RSI (s: [average gain, average loss]) for the close's move since the previous row; 0 while flat."""
    if i == 0:
        return np.nan
    up = max(move, 0.0)
    if i > n:
        s[0] *= n - 1
        s[1] *= n - 1
    s[0] += up
    s[1] += up - move
    if i < n:
        return np.nan
    inv = 1.0 / n
    s[0] *= inv
    s[1] *= inv
    total = s[0] + s[1]
    return 100.0 * (s[0] / total) if total > 0.0 else 0.0


@jit
def stoch_step(s, highs, lows, fast_ks, slow_ks, i, close, fastk, slowk, slowd, y):
    """TA-Lib STOCH with SMA smoothing (s: the two SMA totals; y: slow %K, %D from row fastk + slowk + slowd - 3).
    The extremes are a scan of the last `fastk` highs and lows (rings of at least fastk rows): O(fastk) per row,
    the batch kernel's own scan, so ties and order are the same. `fast_ks` and `slow_ks` hold slowk and slowd
    values of the fast and slow %K."""
    if i < fastk - 1:
        return
    size = len(highs)
    highest, lowest = highs[i % size], lows[i % size]
    for j in range(i - fastk + 1, i):
        highest = max(highest, highs[j % size])
        lowest = min(lowest, lows[j % size])
    span = highest - lowest
    flat = abs(span) <= EPSILON * (abs(highest) + abs(lowest))
    j = i - fastk + 1  # row of the fast %K series
    fast_ks[j % len(fast_ks)] = 0.0 if flat else (close - lowest) / span * 100.0
    slow_k = sma_step(s[0:1], fast_ks, j, slowk)
    if j < slowk - 1:
        return
    j -= slowk - 1  # row of the slow %K series
    slow_ks[j % len(slow_ks)] = slow_k
    slow_d = sma_step(s[1:2], slow_ks, j, slowd)
    if j >= slowd - 1:
        y[0], y[1] = slow_k, slow_d
