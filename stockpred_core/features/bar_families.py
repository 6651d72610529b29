"""Feature families beside the alternative ones: the Alpha158-like library (`alpha158`), stored in the feature table
and served like the technical set (a recipe takes its columns when it names it), and the families computed from the
bars a backtest reads: the last 30 sessions' price/volume path for sequence models (`seq30`). Backtests only: the
served vectors and the intraday path do not carry it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from stockpred_core.features import alpha, sequence
from stockpred_core.features.catalog import LIBRARY_COLUMNS

LIBRARY = alpha.FAMILY  # "alpha158": LIBRARY_COLUMNS of the feature table

BAR_FAMILIES: dict[str, tuple[list[str], Callable[[pd.DataFrame], pd.DataFrame]]] = {
    sequence.FAMILY: (sequence.SEQUENCE_COLUMNS, sequence.sequence_table),
}

BAR_LOOKBACK = sequence.SESSIONS  # sessions of bars a day's values read, at most


def library_columns(families: Sequence[str]) -> list[str]:
    """The library's columns when `families` name it, else none."""
    return list(LIBRARY_COLUMNS) if LIBRARY in set(families) else []


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
