"""Time-ordered dataset segments separated by a gap, so no label overlaps the segment that follows it.

The gap between a training block and the block it is measured on is `purge + embargo` sessions: the purge (at least
the label horizon h) removes training rows whose h-session label would end inside the next block; the embargo adds
sessions on top, against serial correlation of features and labels across the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pandas as pd


def gap_sessions(horizon: int, embargo: int) -> int:
    """Sessions left out between two segments: the label horizon (purge) plus the embargo."""
    if horizon < 1 or embargo < 0:
        raise ValueError(f"horizon must be >= 1 and embargo >= 0, got {horizon} and {embargo}")
    return horizon + embargo


@dataclass(frozen=True)
class Fold:
    train_end: pd.Timestamp  # last date used for training (inclusive)
    test_start: pd.Timestamp
    test_end: pd.Timestamp  # inclusive


def _unique_dates(index: pd.MultiIndex | pd.DatetimeIndex) -> pd.DatetimeIndex:
    dates = index.get_level_values("date") if isinstance(index, pd.MultiIndex) else index
    return pd.DatetimeIndex(dates.unique()).sort_values()


def purged_train_valid(index: pd.MultiIndex, valid_fraction: float, purge: int) -> tuple[pd.Series, pd.Series]:
    """Boolean masks over `index`: the last `valid_fraction` of dates validate, the `purge` dates before them drop."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    dates = _unique_dates(index)
    cut = int(len(dates) * (1.0 - valid_fraction))
    if cut - purge < 1 or cut >= len(dates):
        raise ValueError(
            f"{len(dates)} dates are too few for a {valid_fraction:.0%} validation split with purge {purge}"
        )
    row_dates = index.get_level_values("date")
    valid = pd.Series(row_dates >= dates[cut], index=index)
    train = pd.Series(row_dates < dates[cut - purge], index=index)
    return train, valid


def folds_from(index: pd.MultiIndex, test_start: pd.Timestamp | str, n_folds: int, purge: int) -> list[Fold]:
    """Expanding-window folds whose test blocks tile the dates from `test_start` on (refit `n_folds` times)."""
    dates = _unique_dates(index)
    first = int(dates.searchsorted(pd.Timestamp(test_start)))
    if first - purge < 1:
        raise ValueError(f"no training dates before {pd.Timestamp(test_start):%Y-%m-%d} once {purge} are purged")
    return walk_forward_folds(index, n_folds, first, purge)


def walk_forward_folds(index: pd.MultiIndex, n_folds: int, min_train_dates: int, purge: int) -> list[Fold]:
    """Expanding-window folds that tile the dates after the first `min_train_dates` into `n_folds` test blocks."""
    dates = _unique_dates(index)
    usable = len(dates) - min_train_dates
    if n_folds < 1 or usable < n_folds:
        raise ValueError(f"{len(dates)} dates cannot give {n_folds} folds after {min_train_dates} training dates")
    bounds = [min_train_dates + round(usable * k / n_folds) for k in range(n_folds + 1)]
    return [
        Fold(train_end=dates[lo - purge - 1], test_start=dates[lo], test_end=dates[hi - 1])
        for lo, hi in pairwise(bounds)
    ]
