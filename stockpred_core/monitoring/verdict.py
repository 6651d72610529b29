"""The statuses a day's monitoring gives, the thresholds that decide them, and the day's verdict.

A feature *drifts* when its PSI is past the alert level and past `ordinary_factor` times its ordinary range; the drift
alert is raised when at least `alert_share` of the features drift at once (a warning from `warn_share`). Performance
decay, prediction drift and stale data warn, and never raise the alert (see `verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stockpred_core.monitoring.statistics import PSI_ALERT, PSI_WARN

# Statuses, mildest first.
OK, WARN, ALERT = "ok", "warn", "alert"
NO_SESSION, NO_DATA, NOT_AVAILABLE = "no_session", "no_data", "n/a"


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float = PSI_WARN
    psi_alert: float = PSI_ALERT
    ordinary_factor: float = 1.5  # a feature drifts past max(psi_alert, ordinary_factor x its ordinary range)
    alert_share: float = 0.3  # the drift alert: at least this share of the features drift at once
    warn_share: float = 0.1  # a warning: at least this share of them
    ic_t_warn: float = -2.0  # live rank IC below the champion's test rank IC by this many standard errors
    error_margin: float = 0.1  # live MSE vs naive above the champion's test figure by more than this: warn
    min_ic_dates: int = 20  # labelled live dates needed before the decay is judged


@dataclass(frozen=True)
class DayVerdict:
    status: str
    reasons: list[str] = field(default_factory=list)


def verdict(features_status: str, prediction_status: str, decay_status: str, fresh: str) -> DayVerdict:
    """The day's status: alert (the features drift: retrain), warn (something to look at), or ok.

    Performance decay warns and never alerts: the realized IC of a few dozen names over a few months swings far past
    its standard error on stationary data too (the cross-section's own regimes last longer than any window), so it
    cannot tell decay from luck soon enough to trigger retraining."""
    if features_status == ALERT:
        return DayVerdict(ALERT, ["features drift beyond the reference"])
    warn = {
        "features start to drift": features_status == WARN,
        "predictions drift": prediction_status in (WARN, ALERT),
        "live performance below the champion's test figures": decay_status == WARN,
        "data is stale or incomplete": fresh == WARN,
    }
    reasons = [text for text, hit in warn.items() if hit]
    return DayVerdict(WARN if reasons else OK, reasons)
