"""Which registered model was in force on each trading day, and the scoring of a day's features with it.

No Dagster here. A version promoted to champion by week W's `champion_model` carries the tag `champion_from=W`
(W's Monday); it was trained for week W, on data dated before W's Monday (its `dagster_partition` tag, the training
cut-off). On day D the model in force is the promoted version with the greatest `champion_from` on or before the
Monday of D's week: a model trained up to Monday M never saw a day D >= M, so every prediction is out of sample.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from stockpred_core.io.model_card import DEFAULT_FAMILY

PREDICTION_COLUMNS = ["date", "ticker", "prediction", "model_version", "model_family", "horizon", "label"]


_DTYPES = {
    "date": "datetime64[ns]",
    "ticker": "object",
    "prediction": "float64",
    "model_version": "object",
    "model_family": "object",
    "horizon": "int64",
    "label": "object",
}


def empty_predictions() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})


@dataclass(frozen=True)
class Promotion:
    """A registry version that became champion in the week starting `champion_from`."""

    version: str
    champion_from: pd.Timestamp  # the Monday of the week it was promoted for
    cutoff: pd.Timestamp  # its training cut-off: it saw data dated strictly before this day only
    family: str = DEFAULT_FAMILY


def week_monday(day) -> pd.Timestamp:
    """The Monday that starts `day`'s week (weekly partitions are keyed by it)."""
    day = pd.Timestamp(day).normalize()
    return day - pd.Timedelta(days=day.weekday())


def models_in_force(days: Iterable, promotions: Iterable[Promotion]) -> dict[pd.Timestamp, Promotion | None]:
    """For each day, the promotion in force: the greatest `champion_from` on or before the Monday of the day's week
    (the newest version when a week was promoted twice), among versions whose training cut-off is on or before that
    Monday too (a version tagged inconsistently is never used before its cut-off). None when no model was."""
    ordered = sorted(promotions, key=lambda p: (p.champion_from, int(p.version) if str(p.version).isdigit() else -1))
    chosen: dict[pd.Timestamp, Promotion | None] = {}
    for day in (pd.Timestamp(d).normalize() for d in days):
        monday = week_monday(day)
        usable = [p for p in ordered if p.champion_from <= monday and p.cutoff <= monday]
        chosen[day] = usable[-1] if usable else None
    return chosen


def score(X: pd.DataFrame, model, version: Promotion, horizon: int, label: str) -> pd.DataFrame:
    """Rows of PREDICTION_COLUMNS: `model`'s forecast for each (date, ticker) row of the feature matrix X."""
    if X.empty:
        return empty_predictions()
    values = model.predict(X)
    frame = values.rename("prediction").reset_index()
    frame["model_version"] = str(version.version)
    frame["model_family"] = version.family
    frame["horizon"] = int(horizon)
    frame["label"] = label
    return frame[PREDICTION_COLUMNS]
