"""The training set of a week: features and labels read from the lake through DuckDB, point in time; the alternative
feature set joined when the recipe asks for some of its families."""

from collections.abc import Iterable, Sequence

import dagster as dg
import pandas as pd

from stockpred_core.data.adjustments import adjust
from stockpred_core.data.calendar import lookback_start
from stockpred_core.dataset.training_set import ALT_TABLE, join_alternative, model_columns
from stockpred_core.features.alternative_catalog import check_families
from stockpred_core.features.bar_families import (
    BAR_FAMILIES,
    BAR_LOOKBACK,
    LIBRARY,
    bar_columns,
    bar_families,
    join_bar_families,
    library_columns,
)
from stockpred_core.features.batch import LOOKBACK_SESSIONS
from stockpred_core.models.training import LabelledSet, labelled_set
from stockpred_core.settings import load_settings
from stockpred_resources.lake import DuckDBResource, LakeResource


def recipe_families(families: Iterable[str] | None, *, served: bool = True) -> list[str]:
    """The families of a recipe's `feature_families` beside the technical set (None: the settings'
    STOCKPRED_FEATURE_FAMILIES), validated: the alternative ones, the library ("alpha158", stored and served beside the
    technical set), and with `served=False` (a backtest) also the bar families ("seq30": `features/bar_families.py`)
    computed from the window's bars. A model to be served may not take those: the online vectors and the intraday
    path do not carry them."""
    if families is None:
        families = load_settings().feature_families
    families = list(families)
    bar = bar_families(families)
    if bar and served:
        raise dg.Failure(
            f"feature_families: {bar} are for backtests (backtest_report, stockpred evaluate): the served feature "
            "vectors do not carry their columns, so a model to be served cannot be trained on them"
        )
    library = [LIBRARY] if LIBRARY in families else []
    try:
        return [*library, *check_families(alternative_only(families)), *bar]
    except ValueError as exc:
        raise dg.Failure(f"feature_families: {exc}, {LIBRARY!r}; in backtests also {list(BAR_FAMILIES)}") from exc


def alternative_only(families: Sequence[str]) -> list[str]:
    """The alternative families of a recipe's families (the ones read from alt_features)."""
    return [f for f in families if f not in BAR_FAMILIES and f != LIBRARY]


def load_alt_features(
    lake: LakeResource, duckdb: DuckDBResource, start: pd.Timestamp, end: pd.Timestamp, families: Sequence[str]
) -> pd.DataFrame:
    """The alt_features rows dated in [start, end]; a Failure when the families ask for them and none is there."""
    store = lake.lake()
    held = [d for d in store.partition_dates(*ALT_TABLE) if start <= d <= end]
    if not held:
        raise dg.Failure(
            f"the recipe asks for the alternative families {list(families)}, but features/alt_features has no "
            f"partition in {start:%Y-%m-%d}..{end:%Y-%m-%d}: materialize alt_features for the window, or train "
            "on the technical set alone (feature_families: [technical])"
        )
    alt = duckdb.read_window(store, *ALT_TABLE, start, end)
    versions = alt["sentiment_model_version"] if "sentiment_model_version" in alt else pd.Series(dtype=str)
    scorers = sorted(set(versions.dropna().astype(str)))
    if len(scorers) > 1 and {"news", "social"} & set(families):
        dg.get_dagster_logger().warning(
            f"alt_features in {start:%Y-%m-%d}..{end:%Y-%m-%d} holds sentiment scored by sentiment model versions "
            f"{scorers}: the news and social columns mix two scorers; rematerialize alt_features for the window "
            "to score it with one"
        )
    return alt


def with_alternative(
    lake: LakeResource, duckdb: DuckDBResource, features: pd.DataFrame, families: Sequence[str]
) -> pd.DataFrame:
    """`features` with the alternative columns joined on (date, ticker) when `families` is not empty."""
    if not families or features.empty:
        return features
    dates = pd.to_datetime(features["date"])
    alt = load_alt_features(lake, duckdb, dates.min(), dates.max(), families)
    try:
        return join_alternative(features, alt)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc


def load_training_set(
    lake: LakeResource,
    duckdb: DuckDBResource,
    cutoff: pd.Timestamp,
    train_weeks: int,
    horizon: int,
    label: str,
    families: Sequence[str] = (),
    tickers: Sequence[str] | None = None,
) -> LabelledSet:
    """Rows dated in [cutoff - train_weeks, cutoff) whose label is known before the cut-off; X's columns are the
    technical set's plus those of `families` (the alternative ones, the library, bar families); `tickers` restricts
    the universe (the labels' cross sections too).

    Point in time: a feature row for day D was computed from bars up to D's close (an alternative row from items
    public before D's close); a label for D needs the close `horizon` sessions later, so only bars before the cut-off
    are read and labels reaching past it do not exist. Nothing dated on or after the cut-off is read at all."""
    store = lake.lake()
    start, end = cutoff - pd.Timedelta(weeks=train_weeks), cutoff - pd.Timedelta(days=1)
    features = duckdb.read_window(store, "features", "features", start, end)
    bars_start = lookback_start(start, LOOKBACK_SESSIONS)
    bars = duckdb.read_window(store, "validated", "bars", bars_start, end)
    if tickers is not None and not features.empty and not bars.empty:
        features = features[features["ticker"].isin(tickers)]
        bars = bars[bars["ticker"].isin(tickers)]
    if features.empty or bars.empty:
        restricted = f" for the {len(tickers)} tickers asked" if tickers is not None else ""
        raise dg.Failure(
            f"no features or bars before {cutoff:%Y-%m-%d}{restricted}: materialize the daily assets for that range"
        )
    alternative = alternative_only(families)
    features = with_alternative(lake, duckdb, features, alternative)
    # Labels are total returns: prices adjusted with the splits and dividends known before the cut-off.
    events = duckdb.read_window(store, "validated", "events", bars_start, end)
    adjusted = adjust(bars, events)
    columns = [*model_columns(alternative), *library_columns(families), *bar_columns(families)]
    if bar_families(families):  # each day's values from bars up to that day (at most 61 sessions), these tickers
        recent = adjusted[pd.to_datetime(adjusted["date"]) >= lookback_start(start, BAR_LOOKBACK)]
        features = join_bar_families(features, recent, families)
    try:
        return labelled_set(features, adjusted, horizon, label, columns)
    except ValueError as exc:
        raise dg.Failure(f"cannot train on the window before {cutoff:%Y-%m-%d}: {exc}") from exc
