"""Prediction targets: forward returns over a horizon of sessions."""

from __future__ import annotations

import pandas as pd

from stockpred_assets.core.features import to_wide

DEFAULT_HORIZON = 5


def forward_returns(bars: pd.DataFrame, horizon: int = DEFAULT_HORIZON) -> pd.Series:
    """adj_close(D + horizon sessions) / adj_close(D) - 1, indexed by (date, ticker); NaN where D + h is unknown."""
    adj = to_wide(bars, "adj_close")
    fwd = adj.shift(-horizon) / adj - 1.0
    label = fwd.stack(future_stack=True).rename(f"fwd_ret_{horizon}")
    return label.dropna()
