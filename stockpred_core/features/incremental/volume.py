"""Volume steps: TA-Lib's OBV and Chaikin Money Flow advanced by one row of one ticker (as `kernels/volume.py`)."""

import numpy as np

from stockpred_core.features.kernels.jit import jit


@jit
def obv_step(s, i, close, prev_close, volume):
    """TA-Lib OBV (s: [value]): the first row's volume, then plus or minus each row's volume."""
    if i == 0:
        s[0] = volume
    else:
        s[0] += ((close > prev_close) - (close < prev_close)) * volume
    return s[0]


@jit
def cmf_step(s, flows, volumes, i, high, low, close, volume, n):
    """Chaikin Money Flow over n rows (s: money flow total, volume total, rows with volume; rings of n flows and
    volumes): 0 flow when high == low, NaN for a window in which nothing traded."""
    span = high - low
    flow = ((close - low) - (high - close)) / span * volume if span != 0.0 else 0.0
    flows[i % n], volumes[i % n] = flow, volume
    s[0] += flow
    s[1] += volume
    s[2] += volume != 0.0
    if i < n - 1:
        return np.nan
    value = s[0] / s[1] if s[2] > 0 else np.nan
    old = (i - n + 1) % n
    s[0] -= flows[old]
    s[1] -= volumes[old]
    s[2] -= volumes[old] != 0.0
    return value
