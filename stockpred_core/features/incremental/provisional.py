"""The standard set for a bar that is not final yet (a day's running bar during the session): each ticker's committed
state row is copied and the copy stepped once, so the values are those `indicator_set` would give with the bar as the
ticker's next row, while the committed state stays where it was (it advances when the day's final bar is known)."""

import numpy as np

from stockpred_core.features.incremental.standard import CMF, step
from stockpred_core.features.kernels.jit import jit

VOLUME_SMA = 20  # volume_ratio_20's SMA(volume, 20)


@jit
def provisional(state, count, rows, high, low, close, volume, out, volume_sma):
    """Bar b is ticker rows[b]'s next row: out[b] (NAMES) the standard set's values with it, computed on a copy of the
    ticker's state row (state and count are not written). volume_sma[b] is TA-Lib's SMA(volume, 20) with the bar: CMF
    keeps the same running volume total (added in the same order, the oldest dropped after the read), so its total
    before the step plus the bar's volume is the SMA kernel's total bit for bit. O(1) per bar (the stochastic's
    14-row scan and a Bollinger re-anchoring aside, as in `standard.step`)."""
    s = np.empty(state.shape[1])
    for b in range(len(rows)):
        t = rows[b]
        s[:] = state[t]
        i = count[t]
        total = s[CMF + 1]
        out[b, :] = np.nan
        step(s, i, high[b], low[b], close[b], volume[b], out[b])
        volume_sma[b] = (total + volume[b]) / VOLUME_SMA if i >= VOLUME_SMA - 1 else np.nan
