"""Drift of each day's features against the sessions before it."""

import dagster as dg
import pandas as pd

from stockpred_assets.core.calendar import lookback_start
from stockpred_assets.core.drift import PSI_ALERT, feature_drift
from stockpred_assets.core.features import FEATURE_COLUMNS
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_resources.lake import LakeResource

REFERENCE_SESSIONS = 60


@dg.asset_check(asset="features", partitions_def=trading_days)
def features_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """PSI and KS of the window's features against the 60 sessions before it; warns above PSI 0.25."""
    days = partition_days(context)
    current = lake.read_range("features", "features", days[0], days[-1])
    reference = lake.read_range(
        "features", "features", lookback_start(days[0], REFERENCE_SESSIONS), days[0] - pd.Timedelta(days=1)
    )
    if current.empty or reference.empty:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"skipped": "no reference window or no rows to compare yet"},
        )
    drift = feature_drift(reference, current, FEATURE_COLUMNS)
    worst = drift.iloc[0]
    return dg.AssetCheckResult(
        passed=bool(worst["psi"] < PSI_ALERT),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_psi": float(worst["psi"]),
            "max_psi_feature": str(worst["feature"]),
            "drifted_features": int((drift["psi"] >= PSI_ALERT).sum()),
            "per_feature": dg.MetadataValue.md(drift.round(4).to_markdown(index=False)),
        },
    )
