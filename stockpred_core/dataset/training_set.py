"""Joins features and labels into the (X, y) a model trains on; the alternative feature set joins the technical one
when a recipe asks for some of its families."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from stockpred_core.features.alternative_catalog import (
    ALT_COLUMNS,
    ALT_FEATURE_SET_VERSION,
    ALT_REGISTRY,
    FAMILIES,
    columns_for,
)
from stockpred_core.features.catalog import FEATURE_COLUMNS, LIBRARY_SET, MODEL_INPUTS, REQUIRED_FEATURES

ALT_TABLE = ("features", "alt_features")  # the lake's (layer, table) of the alternative feature rows
ALT_VERSION_COLUMN = "alt_feature_set_version"
MASKS = [f"{family}_covered" for family in FAMILIES]
_FAMILY_OF = {spec.name: spec.family for spec in ALT_REGISTRY}


def model_columns(families: Iterable[str] = ()) -> list[str]:
    """The columns a model of the technical set plus `families` takes, in order (masks included)."""
    return [*FEATURE_COLUMNS, *columns_for(families)]


def stored_inputs(features: pd.DataFrame) -> list[str]:
    """The model inputs a feature table holds: the technical set, and the library where its rows carry it (a table
    written before the library was stored does not)."""
    return [c for c in MODEL_INPUTS if c in features.columns]


def families_of(columns: Iterable[str] | None) -> list[str]:
    """The alternative families whose columns appear among `columns` (a model's feature names), in canonical order."""
    found = {_FAMILY_OF[c] for c in columns or () if c in _FAMILY_OF}
    return [f for f in FAMILIES if f in found]


def combined_version(technical: str, alternative: str | None) -> str:
    """The feature set version of a vector holding the technical columns of `technical` and, when `alternative` is
    given, the alternative columns of that version (`alternative_catalog.feature_set_version` for current code)."""
    return technical if not alternative else f"{technical}+alt-{alternative}"


def checked_alternative(
    alt: pd.DataFrame, keys: Sequence[str] = ("date", "ticker"), version: str = ALT_FEATURE_SET_VERSION
) -> pd.DataFrame:
    """`alt` (rows of the alt_features table) reduced to `keys` + ALT_COLUMNS as floats, after refusing a table
    that cannot be used: columns missing, rows of another version than `version`, a key repeated."""
    missing = [c for c in (*keys, *ALT_COLUMNS) if c not in alt.columns]
    if missing:
        raise ValueError(f"the alternative feature table lacks column(s) {missing[:5]}: rematerialize alt_features")
    if ALT_VERSION_COLUMN in alt and len(alt):
        other = sorted(set(alt[ALT_VERSION_COLUMN].dropna().astype(str)) - {version})
        if other:
            raise ValueError(
                f"alt_features holds rows of alternative feature set {other}, not {version}: rematerialize "
                "alt_features for the window"
            )
    repeated = int(alt.duplicated(subset=list(keys)).sum())
    if repeated:
        raise ValueError(f"alt_features repeats {repeated} {tuple(keys)} row(s)")
    return alt[[*keys, *ALT_COLUMNS]].astype({c: "float64" for c in ALT_COLUMNS})


def split_version(version: str | None) -> tuple[str | None, str | None]:
    """(technical version, alternative version or None) of a feature set version (`combined_version`'s inverse)."""
    if not version:
        return version, None
    technical, _, alternative = version.partition("+alt-")
    return technical, alternative or None


def join_alternative(
    features: pd.DataFrame, alt: pd.DataFrame | None, version: str = ALT_FEATURE_SET_VERSION
) -> pd.DataFrame:
    """`features` with every ALT_COLUMNS column from the (date, ticker) rows of `alt` (a left join; its rows must be
    of alternative set `version`). A row `alt` does not hold gets NaN values and 0 in every `<family>_covered` mask:
    missing coverage is explicit, never a zero."""
    base = features.drop(columns=[c for c in ALT_COLUMNS if c in features.columns])
    base = base.assign(date=pd.to_datetime(base["date"]).astype("datetime64[ns]"))
    if alt is None or alt.empty:
        joined = base.assign(**dict.fromkeys(ALT_COLUMNS, np.nan))
    else:
        right = checked_alternative(alt, version=version)
        right["date"] = pd.to_datetime(right["date"]).astype("datetime64[ns]")
        joined = base.merge(right, on=["date", "ticker"], how="left", validate="one_to_one")
    joined[MASKS] = joined[MASKS].fillna(0.0)
    return joined


def alt_vectors(alt: pd.DataFrame | None, tickers: Sequence[str]) -> np.ndarray:
    """ALT_COLUMNS rows for `tickers` (in order) from a table with at most one row per ticker (one day's): NaN with
    every mask 0 for a ticker it lacks."""
    if alt is None or alt.empty:
        frame = pd.DataFrame(np.nan, index=list(tickers), columns=ALT_COLUMNS)
    else:
        frame = checked_alternative(alt, ("ticker",)).set_index("ticker").reindex(list(tickers))
    frame[MASKS] = frame[MASKS].fillna(0.0)
    return frame.to_numpy(dtype=float)


def feature_matrix(features: pd.DataFrame, columns: Sequence[str] = FEATURE_COLUMNS) -> pd.DataFrame:
    """Model inputs indexed by (date, ticker); rows whose short-window features are still warming up are left out."""
    missing = [c for c in columns if c not in features.columns]
    if missing:
        hint = (
            ": rematerialize `features` for the window (rows written before the Alpha158-like library was stored "
            "lack its columns)"
            if LIBRARY_SET.intersection(missing)
            else ""
        )
        raise ValueError(f"the feature rows lack column(s) {missing[:5]} the model takes{hint}")
    X = features.set_index(["date", "ticker"])[list(columns)].sort_index()
    return X.dropna(subset=REQUIRED_FEATURES)


def training_set(
    features: pd.DataFrame, labels: pd.Series, columns: Sequence[str] = FEATURE_COLUMNS
) -> tuple[pd.DataFrame, pd.Series]:
    """Rows that have both complete features and a known label."""
    X = feature_matrix(features, columns)
    common = X.index.intersection(labels.index)
    X = X.loc[common].sort_index()
    return X, labels.loc[X.index]
