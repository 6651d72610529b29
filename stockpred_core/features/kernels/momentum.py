"""Momentum kernels: TA-Lib's RSI and slow stochastic on one ticker's contiguous rows."""

import numpy as np

from stockpred_core.features.kernels.jit import EPSILON, jit
from stockpred_core.features.kernels.trend import sma


@jit
def rsi(x, n, y):
    """TA-Lib RSI: Wilder's average gain and loss, (avg * (n-1) + move) * (1/n); 0 while nothing has moved."""
    if len(x) <= n:
        return
    inv = 1.0 / n
    gain = loss = 0.0
    for i in range(1, len(x)):
        move = x[i] - x[i - 1]
        up = max(move, 0.0)
        if i > n:
            gain *= n - 1
            loss *= n - 1
        gain += up
        loss += up - move
        if i >= n:
            gain *= inv
            loss *= inv
            total = gain + loss
            y[i] = 100.0 * (gain / total) if total > 0.0 else 0.0


@jit
def stochastic(high, low, close, fastk, slowk, slowd, y):
    """TA-Lib STOCH with SMA smoothing: fast %K over `fastk` rows, slow %K = SMA(fast %K), %D = SMA(slow %K); both
    outputs start with %D. Fast %K is kept in the %D row until %D replaces it."""
    m = len(close)
    first = fastk + slowk + slowd - 3
    if m <= first:
        return
    fast, slow_k, slow_d = y[1], y[0], y[1]
    for i in range(fastk - 1, m):
        highest, lowest = high[i], low[i]
        for j in range(i - fastk + 1, i):
            highest = max(highest, high[j])
            lowest = min(lowest, low[j])
        span = highest - lowest
        # A range within TA_EPSILON of the extremes' magnitude is flat; TA-Lib's %K is then 0.
        flat = abs(span) <= EPSILON * (abs(highest) + abs(lowest))
        fast[i] = 0.0 if flat else (close[i] - lowest) / span * 100.0
    sma(fast[fastk - 1 :], slowk, slow_k[fastk - 1 :])
    sma(slow_k[fastk + slowk - 2 :], slowd, slow_d[fastk + slowk - 2 :])
    slow_k[:first] = np.nan
    slow_d[:first] = np.nan
