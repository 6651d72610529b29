"""Predictions made strictly out of sample. (Feature drift is `drift_report`'s: against the champion's training
window, with per-feature limits; see stockpred_assets/monitoring.)"""

import dagster as dg
import pandas as pd

from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.io.model_card import read_model_card
from stockpred_resources.lake import LakeResource
from stockpred_resources.tracking import MLflowResource


@dg.asset_check(asset="predictions", partitions_def=trading_days, blocking=True)
def predictions_out_of_sample(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, mlflow_resource: MLflowResource
) -> dg.AssetCheckResult:
    """Every prediction was made by a model trained before the day it scores (its training cut-off, the week it
    was trained for, is on or before the day) and promoted for that day's week or before. Blocks the history."""
    days = partition_days(context)
    table = lake.read_range("evaluation", "predictions", days[0], days[-1], columns=["date", "model_version"])
    if table.empty:
        return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
    client, name = mlflow_resource.client(), mlflow_resource.registered_model
    cards = {v: read_model_card(client, name, v) for v in table["model_version"].unique()}
    # a version that does not record when it was trained or promoted is taken as having seen everything
    cutoff = table["model_version"].map({v: _or_never(c.cutoff) for v, c in cards.items()})
    since = table["model_version"].map({v: _or_never(c.champion_from) for v, c in cards.items()})
    dates = pd.to_datetime(table["date"])
    monday = dates - pd.to_timedelta(dates.dt.weekday, unit="D")
    leaked = table[(cutoff > dates) | (since > monday)]
    return dg.AssetCheckResult(
        passed=leaked.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows": len(table),
            "rows_not_out_of_sample": len(leaked),
            "models": dg.MetadataValue.json(
                {
                    v: {"trained_before": _day(card.cutoff), "champion_from": _day(card.champion_from)}
                    for v, card in cards.items()
                }
            ),
            "first_offending_date": f"{leaked['date'].min():%Y-%m-%d}" if len(leaked) else "-",
        },
    )


def _or_never(day: pd.Timestamp | None) -> pd.Timestamp:
    return pd.Timestamp.max if day is None else day


def _day(day: pd.Timestamp | None) -> str | None:
    return None if day is None else f"{day:%Y-%m-%d}"
