"""Feature families computed from the bars a backtest reads, beside the technical table: the Alpha158-like library
(`alpha158`) and the last 30 sessions' price/volume path for sequence models (`seq30`). Backtests only: the served
vectors and the intraday path carry the technical and alternative sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from stockpred_core.features import alpha, sequence

BAR_FAMILIES: dict[str, tuple[list[str], Callable[[pd.DataFrame], pd.DataFrame]]] = {
    alpha.FAMILY: (alpha.ALPHA_COLUMNS, alpha.alpha_table),
    sequence.FAMILY: (sequence.SEQUENCE_COLUMNS, sequence.sequence_table),
}

BAR_LOOKBACK = max(alpha.LOOKBACK, sequence.SESSIONS)  # sessions of bars a day's values read, at most


def bar_families(families: Sequence[str]) -> list[str]:
    """The bar families among `families`, in registry order."""
    return [name for name in BAR_FAMILIES if name in set(families)]


def bar_columns(families: Sequence[str]) -> list[str]:
    """Their columns, in that order."""
    return [c for name in bar_families(families) for c in BAR_FAMILIES[name][0]]


def join_bar_families(features: pd.DataFrame, bars: pd.DataFrame, families: Sequence[str]) -> pd.DataFrame:
    """`features` with the columns of the bar families among `families` computed from `bars` (the same tickers and
    at least the look-back each family needs before the first feature row), joined on (date, ticker)."""
    out = features.assign(date=pd.to_datetime(features["date"]).astype("datetime64[ns]"))
    for name in bar_families(families):
        table = BAR_FAMILIES[name][1](bars)
        table["date"] = pd.to_datetime(table["date"]).astype("datetime64[ns]")
        out = out.merge(table, on=["date", "ticker"], how="left", validate="one_to_one")
    return out
