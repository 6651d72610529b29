"""Joins features and labels into the (X, y) a model trains on."""

from __future__ import annotations

import pandas as pd

from stockpred_core.features.catalog import FEATURE_COLUMNS, REQUIRED_FEATURES


def feature_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """Model inputs indexed by (date, ticker); rows whose short-window features are still warming up are left out."""
    X = features.set_index(["date", "ticker"])[FEATURE_COLUMNS].sort_index()
    return X.dropna(subset=REQUIRED_FEATURES)


def training_set(features: pd.DataFrame, labels: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Rows that have both complete features and a known label."""
    X = feature_matrix(features)
    common = X.index.intersection(labels.index)
    X = X.loc[common].sort_index()
    return X, labels.loc[X.index]
