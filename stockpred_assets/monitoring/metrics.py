"""The drift report's figures as Prometheus gauges, pushed to the Pushgateway (job `stockpred-drift`) when the report
is about a current day: what deploy/k8s's PrometheusRule alerts on."""

import numpy as np
import pandas as pd

from stockpred_assets.metadata import optional_float
from stockpred_assets.monitoring.reference import ChampionFacts
from stockpred_core.monitoring.verdict import ALERT, NO_SESSION
from stockpred_resources.monitoring import MonitoringResource

PUSH_JOB = "stockpred-drift"


def push_metrics(monitoring: MonitoringResource, day: pd.Timestamp, gauges: list) -> str:
    """Push the report's gauges when it is about a current day; what happened, as text."""
    if not monitoring.is_recent(day):
        return f"not pushed: {day:%Y-%m-%d} is a past day (a backfill)"
    return monitoring.push_gauges(PUSH_JOB, gauges)


def drift_gauges(
    summary: pd.DataFrame, per_feature: pd.DataFrame, champion: ChampionFacts
) -> list[tuple[str, str, dict[str, str], float]]:
    """The newest session's figures as Prometheus gauges (what deploy/k8s's PrometheusRule alerts on): the day's
    verdict (`stockpred_drift_alert` 1 when drift_report raised its alert, the drifting share), PSI per feature and
    whether it is past its own limit, and the champion's live rank IC and live error relative to its test segment's."""
    sessions = summary[summary["status"] != NO_SESSION]
    if sessions.empty:
        return []
    latest = sessions.iloc[-1]
    day = per_feature[(per_feature["date"] == latest["date"]) & per_feature["psi"].notna()]
    gauges = [
        ("stockpred_drift_alert", "1 when the day's drift verdict is alert", {}, float(latest["status"] == ALERT))
    ]
    share = optional_float(latest.get("drift_share"))
    if share is not None:
        gauges.append(("stockpred_drift_share", "Share of features drifting past their limits", {}, share))
    for feature, psi, drifting in day[["feature", "psi", "drifting"]].itertuples(index=False):
        labels = {"feature": feature}
        gauges.append(("stockpred_feature_psi", "PSI against the champion's training window", labels, float(psi)))
        gauges.append(("stockpred_feature_drifting", "1 when PSI is past the feature's limit", labels, float(drifting)))
    model = {"model": champion.card.family, "version": champion.card.version}
    rank_ic = optional_float(latest.get("live_rank_ic"))
    if rank_ic is not None:
        gauges.append(("stockpred_model_rank_ic", "Rank IC of the champion's recent live predictions", model, rank_ic))
    live, backtest = optional_float(latest.get("live_mse_vs_naive")), champion.baseline.mse_vs_naive
    is_return = champion.baseline.label == "return"  # a rank model's squared error means nothing
    if is_return and live is not None and backtest is not None and np.isfinite(backtest) and backtest > 0:
        gauges.append(
            ("stockpred_model_error_ratio", "Live MSE vs naive over the test segment's", model, live / backtest)
        )
    return gauges
