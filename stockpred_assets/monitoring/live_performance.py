"""The champion's live predictions in a drift report: how far they drift from its predictions on the reference, and
how they perform against the realized forward returns, per session."""

import numpy as np
import pandas as pd

from stockpred_assets.monitoring.reference import ChampionFacts
from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.monitoring.daily_drift import classify, window_drift
from stockpred_core.monitoring.performance import live_performance
from stockpred_core.monitoring.reference import PREDICTION, DriftReference
from stockpred_core.monitoring.verdict import NOT_AVAILABLE, OK, WARN, DriftThresholds
from stockpred_resources.lake import LakeResource

NO_PREDICTIONS = "no live predictions yet"


def live_figures(
    lake: LakeResource,
    champion: ChampionFacts,
    reference: DriftReference,
    sessions: list[pd.Timestamp],
    window_sessions: int,
    ic_window_sessions: int,
    thresholds: DriftThresholds,
) -> tuple[pd.DataFrame | None, str]:
    """Per session: drift of the champion's live predictions and their realized performance; None and why when the
    champion has made none yet."""
    store = lake.lake()
    if not sessions or not store.partition_dates("evaluation", "predictions"):
        return None, NO_PREDICTIONS
    h = champion.baseline.horizon
    lookback = max(window_sessions, ic_window_sessions + h + 5)
    start = calendar.lookback_start(sessions[0], lookback)
    predictions = lake.read_range("evaluation", "predictions", start, sessions[-1])
    if len(predictions):
        predictions = predictions[predictions["model_version"].astype(str) == champion.card.version]
    if predictions.empty:
        return None, f"{NO_PREDICTIONS} by champion v{champion.card.version}"
    shifted = window_drift(predictions, reference, sessions, window_sessions, [PREDICTION])
    shifted = classify(shifted, reference, thresholds).set_index("date")
    first = pd.Timestamp(predictions["date"].min())
    bars = lake.read_range("validated", "bars", first, sessions[-1])
    events = lake.read_range("validated", "events", first, sessions[-1])
    realized = forward_returns(adjust(bars, events), h) if len(bars) else pd.Series(dtype=float)
    pred = predictions.set_index(["date", "ticker"])["prediction"].astype(float)
    performance = live_performance(pred, realized, sessions, champion.baseline, ic_window_sessions, thresholds)
    live = performance.join(
        shifted[["psi", "ks", "drifting"]].rename(
            columns={"psi": "prediction_psi", "ks": "prediction_ks", "drifting": "prediction_drifting"}
        )
    )
    live["prediction_status"] = np.where(
        live["prediction_psi"].isna(), NOT_AVAILABLE, np.where(live["prediction_drifting"], WARN, OK)
    )
    n = len(predictions)
    return live, f"{n} live predictions of champion v{champion.card.version} read"
