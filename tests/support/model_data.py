"""The training data the model tests share: simulated bars, their features (and, if asked, the seq30 price path the
GRU reads) and 5-session labels, split by date into the oldest 75% to fit on and the rest to predict."""

from __future__ import annotations

import pandas as pd

from stockpred_core.data.simulation import simulate_bars
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.dataset.training_set import training_set
from stockpred_core.features.bar_families import join_bar_families
from stockpred_core.features.batch import FEATURE_COLUMNS, compute_features
from stockpred_core.features.sequence import FAMILY as SEQUENCE
from stockpred_core.features.sequence import SEQUENCE_COLUMNS


def dated_split(
    seed: int, tickers: int, start: str, end: str, sequence: bool = False
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """(X_train, y_train, X_test, y_test) of `tickers` simulated tickers from `start` to `end`: the technical
    columns, plus seq30's with `sequence`."""
    bars = simulate_bars(seed, tickers, start, end)
    features, columns = compute_features(bars), FEATURE_COLUMNS
    if sequence:
        features, columns = join_bar_families(features, bars, [SEQUENCE]), [*FEATURE_COLUMNS, *SEQUENCE_COLUMNS]
    X, y = training_set(features, forward_returns(bars, 5), columns)
    dates = X.index.get_level_values("date")
    train = dates < dates.unique()[int(0.75 * dates.nunique())]
    return X[train], y[train], X[~train], y[~train]
