"""Checks on each day's drift report (what `drift_report` wrote to `monitoring/drift_summary`): a failure at ERROR is
the drift alert (the retraining sensor acts on it), at WARN something to look at. None of them blocks anything."""

import dagster as dg
import pandas as pd

from stockpred_assets.monitoring.reference import LAYER
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.monitoring.verdict import ALERT, NO_SESSION, WARN
from stockpred_resources.lake import LakeResource

LIVE_FIGURES = [
    "live_rank_ic",
    "baseline_rank_ic",
    "ic_gap_t",
    "live_mse_vs_naive",
    "baseline_mse_vs_naive",
    "prediction_psi",
    "prediction_ks",
]


def _sessions(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> pd.DataFrame:
    days = partition_days(context)
    summary = lake.read_range(LAYER, "drift_summary", days[0], days[-1])
    return summary[summary["status"] != NO_SESSION].sort_values("date") if len(summary) else summary


def _dates(frame: pd.DataFrame, mask: pd.Series) -> list[str]:
    return [f"{d:%Y-%m-%d}" for d in frame.loc[mask, "date"]]


def _verdict(alerts: list[str], warnings: list[str], metadata: dict) -> dg.AssetCheckResult:
    metadata = {
        **metadata,
        "alert_days": dg.MetadataValue.json(alerts),
        "warn_days": dg.MetadataValue.json(warnings[-50:]),
    }
    if alerts:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)
    return dg.AssetCheckResult(passed=not warnings, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


def _floats(row: pd.Series, names: list[str]) -> dict[str, float]:
    return {n: float(row[n]) for n in names if n in row and pd.notna(row[n])}


def _skipped(reason: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"skipped": reason})


@dg.asset_check(asset="drift_report", partitions_def=trading_days)
def feature_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """ERROR when at least the alert share of the features drift beyond the champion's reference (the drift alert),
    WARN when some do."""
    sessions = _sessions(context, lake)
    if "feature_status" not in sessions or sessions["feature_status"].isna().all():
        return _skipped("no champion or no features to compare yet")
    sessions = sessions.dropna(subset=["feature_status"])
    latest = sessions.iloc[-1]
    return _verdict(
        _dates(sessions, sessions["feature_status"] == ALERT),
        _dates(sessions, sessions["feature_status"] == WARN),
        {
            "latest": f"{latest['date']:%Y-%m-%d}",
            "features_drifting": int(latest["drifting"]),
            "max_psi_feature": str(latest["max_psi_feature"]),
            **_floats(latest, ["drift_share", "max_psi", "max_ks"]),
        },
    )


@dg.asset_check(asset="drift_report", partitions_def=trading_days)
def prediction_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """The champion's live predictions: WARN when their realized rank IC falls below its test rank IC by two standard
    errors or their error against the naive forecast worsens (performance decay), or their distribution drifts."""
    sessions = _sessions(context, lake)
    if "decay_status" not in sessions or sessions["decay_status"].isna().all():
        return _skipped("no live predictions yet")
    sessions = sessions.dropna(subset=["decay_status"])
    latest = sessions.iloc[-1]
    slipping = (sessions["decay_status"] == WARN) | (sessions["prediction_status"] == WARN)
    return _verdict(
        [],
        _dates(sessions, slipping),
        {
            "latest": f"{latest['date']:%Y-%m-%d}",
            "decay_status": str(latest["decay_status"]),
            "labelled_dates": int(latest["ic_dates"]) if pd.notna(latest["ic_dates"]) else 0,
            **_floats(latest, LIVE_FIGURES),
        },
    )


@dg.asset_check(asset="drift_report", partitions_def=trading_days)
def data_freshness(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """WARN when a session's features are missing, lag behind it, or cover less of the universe than usual."""
    sessions = _sessions(context, lake)
    if sessions.empty:
        return _skipped("no session in the range")
    latest = sessions.iloc[-1]
    last = latest["last_data_date"]
    return _verdict(
        [],
        _dates(sessions, sessions["fresh"] == WARN),
        {
            "latest": f"{latest['date']:%Y-%m-%d}",
            "last_data_date": f"{last:%Y-%m-%d}" if pd.notna(last) else "-",
            "sessions_behind": int(latest["sessions_behind"]) if pd.notna(latest["sessions_behind"]) else -1,
            **_floats(latest, ["coverage"]),
        },
    )
