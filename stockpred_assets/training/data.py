"""The training set of a week: features and labels read from the lake through DuckDB, point in time."""

import dagster as dg
import pandas as pd

from stockpred_core.data.adjustments import adjust
from stockpred_core.data.calendar import lookback_start
from stockpred_core.features.batch import LOOKBACK_SESSIONS
from stockpred_core.models.training import LabelledSet, labelled_set
from stockpred_resources.lake import DuckDBResource, LakeResource


def load_training_set(
    lake: LakeResource, duckdb: DuckDBResource, cutoff: pd.Timestamp, train_weeks: int, horizon: int, label: str
) -> LabelledSet:
    """Rows dated in [cutoff - train_weeks, cutoff) whose label is known before the cut-off.

    Point in time: a feature row for day D was computed from bars up to D's close; a label for D needs the close
    `horizon` sessions later, so only bars before the cut-off are read and labels reaching past it do not exist.
    Nothing dated on or after the cut-off is read at all."""
    store = lake.lake()
    start, end = cutoff - pd.Timedelta(weeks=train_weeks), cutoff - pd.Timedelta(days=1)
    features = duckdb.read_window(store, "features", "features", start, end)
    bars_start = lookback_start(start, LOOKBACK_SESSIONS)
    bars = duckdb.read_window(store, "validated", "bars", bars_start, end)
    if features.empty or bars.empty:
        raise dg.Failure(f"no features or bars before {cutoff:%Y-%m-%d}: materialize the daily assets for that range")
    # Labels are total returns: prices adjusted with the splits and dividends known before the cut-off.
    events = duckdb.read_window(store, "validated", "events", bars_start, end)
    try:
        return labelled_set(features, adjust(bars, events), horizon, label)
    except ValueError as exc:
        raise dg.Failure(f"cannot train on the window before {cutoff:%Y-%m-%d}: {exc}") from exc
