"""The drift report's tables: one row per day with its verdict, its reasons and the figures behind them, written to
the lake beside the per-feature rows (`monitoring/drift_summary`, `monitoring/drift_features`)."""

import pandas as pd

from stockpred_assets.monitoring.reference import LAYER, ChampionFacts
from stockpred_core.monitoring.daily_drift import feature_summary
from stockpred_core.monitoring.reference import DriftReference
from stockpred_core.monitoring.verdict import NO_DATA, NO_SESSION, NOT_AVAILABLE, DriftThresholds, verdict
from stockpred_resources.lake import DuckDBResource, LakeResource


def day_summary(
    days: list[pd.Timestamp],
    champion: ChampionFacts,
    reference: DriftReference,
    per_feature: pd.DataFrame,
    live: pd.DataFrame | None,
    fresh: pd.DataFrame,
    thresholds: DriftThresholds,
) -> pd.DataFrame:
    """One row per day of the run: the verdict, its reasons and the figures behind it."""
    table = fresh.join(feature_summary(per_feature, thresholds))
    if live is not None:
        table = table.join(live.drop(columns=["prediction_drifting"]))
    windows = per_feature.groupby("date")[["window_start", "window_end"]].first() if len(per_feature) else None
    if windows is not None:
        table = table.join(windows)
    rows = []
    for _, row in table.iterrows():
        if row["fresh"] == NO_SESSION:
            rows.append({"status": NO_SESSION, "reasons": "not an NYSE session"})
            continue
        if pd.isna(row.get("feature_status")):
            rows.append({"status": NO_DATA, "reasons": "no feature rows in the window"})
            continue
        day = verdict(
            row["feature_status"],
            row.get("prediction_status", NOT_AVAILABLE),
            row.get("decay_status", NOT_AVAILABLE),
            row["fresh"],
        )
        rows.append({"status": day.status, "reasons": "; ".join(day.reasons)})
    out = table.assign(**pd.DataFrame(rows, index=table.index))
    out = out.assign(
        champion_version=champion.card.version,
        baseline_rank_ic=champion.baseline.rank_ic,
        baseline_mse_vs_naive=champion.baseline.mse_vs_naive,
        reference_start=reference.start,
        reference_end=reference.end,
        alert_share=thresholds.alert_share,
    )
    return out.rename_axis("date").reset_index()


def write_report(
    lake: LakeResource, duckdb: DuckDBResource, summary: pd.DataFrame, per_feature: pd.DataFrame, days
) -> None:
    lake.write_partitions(LAYER, "drift_summary", summary, days)
    lake.write_partitions(LAYER, "drift_features", per_feature, days)
    duckdb.register_view(lake.lake(), LAYER, "drift_summary", view="drift_summary")
