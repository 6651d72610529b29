"""Each day's drift: PSI and KS of the latest `window` sessions up to the day against a reference, each feature's
status and whether it drifts beyond its ordinary range, and the day's summary over the features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stockpred_core.monitoring.reference import DriftReference
from stockpred_core.monitoring.statistics import date_codes, psi_of_shares, trailing_sums, window_counts
from stockpred_core.monitoring.verdict import ALERT, NO_DATA, OK, WARN, DriftThresholds

COUNT_COLUMNS = ["date", "feature", "kind", "counts"]  # kind: "psi" or "ks"; counts: one per bin


def date_counts(frame: pd.DataFrame, reference: DriftReference, columns: Sequence[str]) -> pd.DataFrame:
    """Per date of `frame` and column of the reference: the rows in each PSI bin and each KS bin of the reference
    (COUNT_COLUMNS, one row per date, column and kind). A day's counts do not depend on any other day, so a daily
    report computes its new day's and keeps the rest (`window_drift_from_counts`)."""
    columns = [c for c in columns if c in reference.features and c in frame.columns]
    if frame.empty or not columns:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    dates, codes = date_codes(frame["date"])
    parts = []
    for name in columns:
        ref = reference.features[name]
        values = frame[name].to_numpy(dtype=float)
        ok = np.isfinite(values)
        for kind, cuts in (("psi", ref.cuts), ("ks", ref.ks_cuts)):
            counts = window_counts(codes[ok], values[ok], cuts, len(dates), 1)
            parts.append(pd.DataFrame({"date": dates, "feature": name, "kind": kind, "counts": list(counts)}))
    return pd.concat(parts, ignore_index=True)


def window_drift_from_counts(
    counts: pd.DataFrame, reference: DriftReference, days: Sequence, window: int, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """PSI and KS, for each day and column of the reference, of the rows counted (`date_counts`) on the latest
    `window` dates up to that day. Long: date, feature, psi, ks, rows, window_start, window_end."""
    columns = [c for c in (columns or reference.features) if c in reference.features]
    days = pd.DatetimeIndex(pd.to_datetime(list(days))).normalize()
    empty = pd.DataFrame(columns=["date", "feature", "psi", "ks", "rows", "window_start", "window_end"])
    if counts.empty or not columns or len(days) == 0:
        return empty
    dates = pd.DatetimeIndex(sorted(pd.to_datetime(counts["date"]).dt.normalize().unique()))
    last = np.searchsorted(dates.values, days.values, side="right") - 1  # the latest counted date <= each day
    have = last >= 0
    pos = last[have]
    starts = dates[np.maximum(pos - window + 1, 0)]
    keyed = counts.assign(at=dates.get_indexer(pd.to_datetime(counts["date"]).dt.normalize()))
    by_key = {key: group for key, group in keyed.groupby(["feature", "kind"])}
    parts = []
    for name in columns:
        if (name, "psi") not in by_key:
            continue
        ref = reference.features[name]
        trailing = {}
        for kind, cuts in (("psi", ref.cuts), ("ks", ref.ks_cuts)):
            group = by_key[(name, kind)]
            per_date = np.zeros((len(dates), len(cuts) + 1))
            per_date[group["at"].to_numpy()] = np.stack(group["counts"].to_numpy())
            trailing[kind] = trailing_sums(per_date, window)[pos]
        psi_counts, ks_counts = trailing["psi"], trailing["ks"]
        rows = psi_counts.sum(axis=1)
        safe = np.where(rows > 0, rows, 1.0)[:, None]
        value_psi = np.where(rows > 0, psi_of_shares(ref.shares, psi_counts / safe), np.nan)
        below = np.cumsum(ks_counts, axis=1)[:, :-1] / safe  # current P(X < ks_cuts[j])
        gaps = np.abs(below - ref.ks_cdf) if len(ref.ks_cdf) else np.zeros((len(pos), 1))
        value_ks = np.where(rows > 0, gaps.max(axis=1), np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "date": days[have],
                    "feature": name,
                    "psi": value_psi,
                    "ks": value_ks,
                    "rows": rows.astype(int),
                    "window_start": starts,
                    "window_end": dates[pos],
                }
            )
        )
    if not parts:
        return empty
    return pd.concat(parts, ignore_index=True).sort_values(["date", "feature"], ignore_index=True)


def window_drift(
    frame: pd.DataFrame, reference: DriftReference, days: Sequence, window: int, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """PSI and KS, for each day and column of the reference, of the rows of `frame` dated in the latest `window`
    dates of `frame` up to that day. Long: date, feature, psi, ks, rows, window_start, window_end."""
    columns = [c for c in (columns or reference.features) if c in reference.features and c in frame.columns]
    return window_drift_from_counts(date_counts(frame, reference, columns), reference, days, window, columns)


def classify(drift: pd.DataFrame, reference: DriftReference, thresholds: DriftThresholds) -> pd.DataFrame:
    """Adds each row's fixed-threshold status (ok / warn / alert), its drift limit and whether it drifts."""
    ordinary = drift["feature"].map({k: v.ordinary_psi for k, v in reference.features.items()}).astype(float)
    limit = np.maximum(thresholds.psi_alert, thresholds.ordinary_factor * ordinary.fillna(0.0))
    status = np.select([drift["psi"] >= thresholds.psi_alert, drift["psi"] >= thresholds.psi_warn], [ALERT, WARN], OK)
    return drift.assign(
        status=np.where(drift["psi"].isna(), NO_DATA, status),
        ordinary_psi=ordinary,
        limit=limit,
        drifting=(drift["psi"] >= limit).fillna(False).astype(bool),
    )


def feature_summary(classified: pd.DataFrame, thresholds: DriftThresholds) -> pd.DataFrame:
    """Per date: features compared, at warn and alert level, drifting, the drifting share, the worst PSI and KS and
    the feature status (alert: the drifting share reaches `alert_share`; warn: it reaches `warn_share`)."""
    if classified.empty:
        return pd.DataFrame(
            columns=["features", "warn", "alert", "drifting", "drift_share", "max_psi", "max_psi_feature", "max_ks"]
        )
    known = classified.dropna(subset=["psi"])
    grouped = known.groupby("date")
    worst = known.loc[grouped["psi"].idxmax(), ["date", "feature"]].set_index("date")["feature"]
    out = pd.DataFrame(
        {
            "features": grouped.size(),
            "warn": grouped["status"].apply(lambda s: int((s == WARN).sum())),
            "alert": grouped["status"].apply(lambda s: int((s == ALERT).sum())),
            "drifting": grouped["drifting"].sum().astype(int),
            "max_psi": grouped["psi"].max(),
            "max_psi_feature": worst,
            "max_ks": grouped["ks"].max(),
        }
    )
    out["drift_share"] = out["drifting"] / out["features"]
    out["feature_status"] = np.select(
        [out["drift_share"] >= thresholds.alert_share, out["drift_share"] >= thresholds.warn_share], [ALERT, WARN], OK
    )
    return out
