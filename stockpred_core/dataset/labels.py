"""Prediction targets: forward returns over a horizon of sessions."""

from __future__ import annotations

import pandas as pd

from stockpred_core.features.batch import to_wide

DEFAULT_HORIZON = 5  # sessions ahead: what training, evaluation, monitoring and old registry versions assume


def forward_returns(bars: pd.DataFrame, horizon: int = DEFAULT_HORIZON) -> pd.Series:
    """adj_close(D + horizon sessions) / adj_close(D) - 1, indexed by (date, ticker); NaN where D + h is unknown."""
    adj = to_wide(bars, "adj_close")
    fwd = adj.shift(-horizon) / adj - 1.0
    label = fwd.stack(future_stack=True).rename(f"fwd_ret_{horizon}")
    return label.dropna()


LABEL_KINDS = ("return", "rank")
DEFAULT_LABEL = "return"


def cross_sectional_rank(returns: pd.Series) -> pd.Series:
    """Each date's forward returns as percentile ranks centred on 0 (-0.5 worst .. +0.5 best): the target of a
    model that only has to order the universe, free of the market's common move and of outliers."""
    ranks = returns.groupby(level="date").rank(pct=True)
    counts = returns.groupby(level="date").transform("size")
    # pct ranks run 1/n..1: centre them so the mean of each date is exactly 0
    return (ranks - (counts + 1) / (2 * counts)).rename(f"{returns.name}_rank")


def make_label(bars: pd.DataFrame, horizon: int = DEFAULT_HORIZON, kind: str = DEFAULT_LABEL) -> pd.Series:
    """The training target: the forward `horizon`-session return, or (kind="rank") its cross-sectional rank."""
    if kind not in LABEL_KINDS:
        raise ValueError(f"label must be one of {LABEL_KINDS}, not {kind!r}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    returns = forward_returns(bars, horizon)
    return returns if kind == "return" else cross_sectional_rank(returns)
