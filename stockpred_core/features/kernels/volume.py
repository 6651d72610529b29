"""Volume kernels: TA-Lib's OBV and Chaikin Money Flow on one ticker's contiguous rows."""

import numpy as np

from stockpred_core.features.kernels.jit import jit


@jit
def obv(close, volume, y):
    """TA-Lib OBV: starts at the first row's volume, then adds or subtracts each row's volume."""
    if len(close) == 0:
        return
    value = volume[0]
    y[0] = value
    for i in range(1, len(close)):
        value += ((close[i] > close[i - 1]) - (close[i] < close[i - 1])) * volume[i]
        y[i] = value


@jit
def cmf(high, low, close, volume, n, y):
    """Chaikin Money Flow: sum(MFV, n) / sum(volume, n), MFV = ((close-low) - (high-close)) / (high-low) * volume,
    0 when high == low. A window in which no volume traded has no money flow to measure: NaN. The count of rows with
    volume decides that exactly, where a running total could keep a rounding residue."""
    flow = np.empty(len(close))
    money = traded = 0.0
    active = 0
    for i in range(len(close)):
        span = high[i] - low[i]
        flow[i] = ((close[i] - low[i]) - (high[i] - close[i])) / span * volume[i] if span != 0.0 else 0.0
        money += flow[i]
        traded += volume[i]
        active += volume[i] != 0.0
        if i >= n - 1:
            y[i] = money / traded if active > 0 else np.nan
            money -= flow[i - n + 1]
            traded -= volume[i - n + 1]
            active -= volume[i - n + 1] != 0.0
