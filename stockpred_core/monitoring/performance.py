"""Decay of the champion's live performance: the rank IC (and, for return forecasts, the error against the naive zero
forecast) of its live predictions over the latest `ic_window` sessions whose forward return is known, against its own
out-of-sample test figures; the gap is measured in standard errors of non-overlapping dates. It warns, and never
raises the alert (see `verdict.verdict`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.dataset.labels import DEFAULT_HORIZON, DEFAULT_LABEL
from stockpred_core.evaluation.backtest import daily_ic
from stockpred_core.monitoring.verdict import NOT_AVAILABLE, OK, WARN, DriftThresholds

DEFAULT_THRESHOLDS = DriftThresholds()


@dataclass(frozen=True)
class Baseline:
    """The champion's out-of-sample figures on its test segment."""

    rank_ic: float
    ic: float = float("nan")
    mse_vs_naive: float = float("nan")
    horizon: int = DEFAULT_HORIZON
    label: str = DEFAULT_LABEL  # "rank": predictions are scores, their squared error means nothing


def live_performance(
    predictions: pd.Series,
    realized: pd.Series,
    days: Sequence,
    baseline: Baseline,
    ic_window: int,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """Per day: rank IC, IC and MSE vs naive of the live predictions (by (date, ticker)) against realized forward
    returns over the latest `ic_window` prediction dates whose return was known on that day (dated at least
    `horizon` sessions before it), the gap to the baseline in standard errors (non-overlapping dates) and the
    decay status (warn when the gap reaches `ic_t_warn` or the error worsens by `error_margin`)."""
    days = pd.DatetimeIndex(pd.to_datetime(list(days))).normalize()
    h = int(baseline.horizon)
    frame = pd.concat({"pred": predictions, "label": realized}, axis=1, join="inner").dropna()
    no_dates = pd.Series(dtype=float, index=pd.DatetimeIndex([], name="date"))
    rank_ic = daily_ic(frame["pred"], frame["label"], "spearman") if len(frame) else no_dates
    ic = daily_ic(frame["pred"], frame["label"], "pearson") if len(frame) else no_dates
    if len(rank_ic) == 0:  # no prediction has a realized return yet (e.g. the first days of a champion)
        rank_ic, ic = no_dates, no_dates
    by_date = (
        frame.assign(se=(frame["pred"] - frame["label"]) ** 2, naive=frame["label"] ** 2)
        .groupby(level="date")[["se", "naive"]]
        .sum()
    )
    rows = []
    for day in days:
        known_until = calendar.previous_sessions(day + pd.Timedelta(days=1), h + 1)[0]  # its label ends by `day`
        dates = rank_ic.index[rank_ic.index <= known_until][-ic_window:]
        row = {"date": day, "ic_dates": len(dates), "live_rank_ic": np.nan, "live_ic": np.nan}
        row |= {"live_mse_vs_naive": np.nan, "ic_gap_t": np.nan, "decay_status": NOT_AVAILABLE}
        if len(dates):
            window_ic = rank_ic.loc[dates]
            spaced = window_ic.iloc[::-1].iloc[::h]  # every h-th date back from the newest: no overlap
            sums = by_date.loc[dates].sum()
            row["live_rank_ic"] = float(window_ic.mean())
            row["live_ic"] = float(ic.reindex(dates).mean())
            row["live_mse_vs_naive"] = float(sums["se"] / sums["naive"]) if sums["naive"] > 0 else np.nan
            std = float(spaced.std()) if len(spaced) > 1 else np.nan
            if std > 0 and np.isfinite(baseline.rank_ic):
                row["ic_gap_t"] = float((window_ic.mean() - baseline.rank_ic) / (std / np.sqrt(len(spaced))))
            row["decay_status"] = _decay_status(row, len(dates), baseline, thresholds)
        rows.append(row)
    return pd.DataFrame(rows).set_index("date")


def _decay_status(row: Mapping, n_dates: int, baseline: Baseline, thresholds: DriftThresholds) -> str:
    if n_dates < thresholds.min_ic_dates or not np.isfinite(row["ic_gap_t"]):
        return NOT_AVAILABLE
    worse_error = (
        baseline.label == "return"
        and np.isfinite(baseline.mse_vs_naive)
        and row["live_mse_vs_naive"] > baseline.mse_vs_naive + thresholds.error_margin
    )
    return WARN if row["ic_gap_t"] <= thresholds.ic_t_warn or worse_error else OK
