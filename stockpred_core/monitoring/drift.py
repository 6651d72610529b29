"""Drift of live data against the reference a model was trained on, and the decay of its live performance.

No Dagster here. The reference is fitted once per champion, from the features of its training window:
- PSI bins: the reference's deciles (unique cut points, so a discrete feature keeps one bin per value) and the share of
  the reference in each bin. A window's PSI is sum((c - r) * ln(c / r)) over the bins, shares floored at 1e-4.
  Per feature: warn at PSI 0.1, alert at 0.25 (the usual rule of thumb).
- KS grid: the reference's percentiles and its CDF there; a window's KS statistic is the largest CDF gap on that grid
  (within 0.01 of the exact two-sample statistic, without keeping the reference rows).
- the ordinary range: the largest PSI that a `window`-session window of the reference itself reaches against the
  whole reference. Features of the market's state (the VIX, the regime, 60-session correlation, volatility) move in
  clusters lasting weeks, so a calm month reads as drift against two years that hold a storm. A feature *drifts*
  when its PSI is past the alert level and past `ordinary_factor` times its ordinary range; the drift alert is
  raised when at least `alert_share` of the features drift at once (a warning from `warn_share`).

The current side is a window of the latest `window` sessions up to each day; all days of a range are computed at once
from per-date bin counts (cumulative sums), so a year of daily reports costs about as much as one.

Performance decay compares the rank IC (and, for return forecasts, the error against the naive zero forecast) of the
champion's live predictions, over the latest `ic_window` sessions whose forward return is known, with its own
out-of-sample test figures; the gap is measured in standard errors of non-overlapping dates. It warns, and never
raises the alert (see `verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from stockpred_core.data import calendar
from stockpred_core.dataset.labels import DEFAULT_HORIZON, DEFAULT_LABEL
from stockpred_core.evaluation.backtest import daily_ic

PSI_WARN = 0.1
PSI_ALERT = 0.25
PSI_BINS = 10
KS_POINTS = 100
SHARE_FLOOR = 1e-4
PREDICTION = "prediction"  # the pseudo-feature holding the model's predictions in a reference

# Statuses, mildest first.
OK, WARN, ALERT = "ok", "warn", "alert"
NO_SESSION, NO_DATA, NOT_AVAILABLE = "no_session", "no_data", "n/a"


# --- PSI and KS over fixed bins ------------------------------------------------------------------------------------


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def fit_cuts(values, bins: int = PSI_BINS) -> np.ndarray:
    """Interior cut points at the `bins`-quantiles of the finite values (unique: ties merge bins)."""
    values = _finite(values)
    if len(values) == 0:
        return np.array([], dtype=float)
    # observed values as cut points (no interpolation), so a discrete feature's values each start a bin
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf"))


def bin_index(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Bin of each value: bin j holds [cuts[j-1], cuts[j]), the outer bins are open to -inf and +inf."""
    return np.searchsorted(cuts, values, side="right")


def bin_shares(values, cuts: np.ndarray) -> np.ndarray:
    values = _finite(values)
    counts = np.bincount(bin_index(values, cuts), minlength=len(cuts) + 1).astype(float)
    return counts / max(len(values), 1)


def psi_of_shares(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """PSI of current bin shares (last axis) against reference shares; shares are floored at 1e-4."""
    r, c = np.clip(reference, SHARE_FLOOR, None), np.clip(current, SHARE_FLOOR, None)
    return np.sum((c - r) * np.log(c / r), axis=-1)


def psi(reference, current, bins: int = PSI_BINS) -> float:
    """Population stability index of `current` over the quantile bins of `reference` (NaN when either is too small)."""
    reference, current = _finite(reference), _finite(current)
    if len(reference) < bins or len(current) == 0:
        return float("nan")
    cuts = fit_cuts(reference, bins)
    return float(psi_of_shares(bin_shares(reference, cuts), bin_shares(current, cuts)))


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """PSI and two-sample KS per feature column between two frames of rows, worst first."""
    rows = []
    for col in columns:
        ref, cur = reference[col].dropna().to_numpy(), current[col].dropna().to_numpy()
        ks = stats.ks_2samp(ref, cur) if len(ref) and len(cur) else None
        rows.append(
            {
                "feature": col,
                "psi": psi(ref, cur),
                "ks_stat": float(ks.statistic) if ks else np.nan,
                "ks_pvalue": float(ks.pvalue) if ks else np.nan,
            }
        )
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)


# --- the reference -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureReference:
    cuts: np.ndarray  # PSI bin cut points
    shares: np.ndarray  # reference share per PSI bin (len(cuts) + 1)
    ks_cuts: np.ndarray  # percentiles of the reference
    ks_cdf: np.ndarray  # reference P(X < ks_cuts[j])
    ordinary_psi: float  # the largest PSI of a `window`-session window of the reference (NaN: too short to say)
    rows: int


@dataclass(frozen=True)
class DriftReference:
    """Fixed bins, KS grid and ordinary range per feature, fitted on a model's training window."""

    features: dict[str, FeatureReference]
    window: int  # the window length (sessions) the ordinary ranges were measured for
    start: pd.Timestamp
    end: pd.Timestamp
    sessions: int

    def to_frame(self) -> pd.DataFrame:
        """One long table (what the lake stores): a row per PSI bin, KS point and feature summary."""
        rows = []
        for name, ref in self.features.items():
            rows.append((name, "summary", 0, ref.ordinary_psi, float(ref.rows)))
            edges = np.append(ref.cuts, np.inf)  # bin j's upper edge
            rows += [(name, "psi_bin", j, float(edges[j]), float(ref.shares[j])) for j in range(len(edges))]
            points = enumerate(zip(ref.ks_cuts, ref.ks_cdf, strict=True))
            rows += [(name, "ks_point", j, float(x), float(p)) for j, (x, p) in points]
        frame = pd.DataFrame(rows, columns=["feature", "kind", "position", "value", "share"])
        return frame.assign(window=self.window, start=self.start, end=self.end, sessions=self.sessions)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> DriftReference:
        features = {}
        for name, rows in frame.groupby("feature", sort=False):
            rows = rows.sort_values("position")
            summary = rows[rows["kind"] == "summary"].iloc[0]
            bins, points = rows[rows["kind"] == "psi_bin"], rows[rows["kind"] == "ks_point"]
            features[str(name)] = FeatureReference(
                cuts=bins["value"].to_numpy(float)[:-1],
                shares=bins["share"].to_numpy(float),
                ks_cuts=points["value"].to_numpy(float),
                ks_cdf=points["share"].to_numpy(float),
                ordinary_psi=float(summary["value"]),
                rows=int(summary["share"]),
            )
        first = frame.iloc[0]
        return cls(
            features, int(first["window"]), pd.Timestamp(first["start"]), pd.Timestamp(first["end"]),
            int(first["sessions"]),
        )  # fmt: skip


def _date_codes(dates: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray]:
    codes, uniques = pd.factorize(pd.to_datetime(dates).dt.normalize(), sort=True)
    return pd.DatetimeIndex(uniques), codes


def _counts(codes: np.ndarray, bins: np.ndarray, n_dates: int, n_bins: int) -> np.ndarray:
    """(n_dates, n_bins) counts of rows per date and bin."""
    flat = np.bincount(codes * n_bins + bins, minlength=n_dates * n_bins)
    return flat.reshape(n_dates, n_bins).astype(float)


def _trailing_sums(counts: np.ndarray, window: int) -> np.ndarray:
    """Row i: the sum of rows max(0, i - window + 1)..i."""
    total = np.cumsum(counts, axis=0)
    out = total.copy()
    out[window:] -= total[:-window]
    return out


def _window_counts(codes: np.ndarray, values: np.ndarray, cuts: np.ndarray, n_dates: int, window: int) -> np.ndarray:
    """(n_dates, bins) counts of the values in each bin over the `window` dates up to each date."""
    return _trailing_sums(_counts(codes, bin_index(values, cuts), n_dates, len(cuts) + 1), window)


def build_reference(
    frame: pd.DataFrame, columns: Sequence[str], window: int, bins: int = PSI_BINS, ks_points: int = KS_POINTS
) -> DriftReference:
    """The reference of `columns` in `frame` (rows with a `date`): bins, KS grid and each column's ordinary range."""
    if frame.empty:
        raise ValueError("the reference window holds no rows")
    dates, codes = _date_codes(frame["date"])
    features = {}
    for name in columns:
        values = frame[name].to_numpy(dtype=float)
        ok = np.isfinite(values)
        if not ok.any():
            continue  # a column without a single value has no distribution to drift from
        kept = np.sort(values[ok])
        cuts, ks_cuts = fit_cuts(kept, bins), fit_cuts(kept, ks_points)
        shares = np.bincount(bin_index(values[ok], cuts), minlength=len(cuts) + 1) / len(kept)
        windows = _window_counts(codes[ok], values[ok], cuts, len(dates), window)[window - 1 :]
        totals = windows.sum(axis=1)
        full = totals > 0
        ordinary = (
            float(psi_of_shares(shares, windows[full] / totals[full, None]).max())
            if len(dates) >= 2 * window and full.any()
            else float("nan")
        )
        features[name] = FeatureReference(
            cuts=cuts,
            shares=shares,
            ks_cuts=ks_cuts,
            ks_cdf=np.searchsorted(kept, ks_cuts, side="left") / len(kept),
            ordinary_psi=ordinary,
            rows=len(kept),
        )
    return DriftReference(features, window, dates[0], dates[-1], len(dates))


# --- the current side ----------------------------------------------------------------------------------------------


def window_drift(
    frame: pd.DataFrame, reference: DriftReference, days: Sequence, window: int, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """PSI and KS, for each day and column of the reference, of the rows of `frame` dated in the latest `window`
    dates of `frame` up to that day. Long: date, feature, psi, ks, rows, window_start, window_end."""
    columns = [c for c in (columns or reference.features) if c in reference.features and c in frame.columns]
    days = pd.DatetimeIndex(pd.to_datetime(list(days))).normalize()
    empty = pd.DataFrame(columns=["date", "feature", "psi", "ks", "rows", "window_start", "window_end"])
    if frame.empty or not columns or len(days) == 0:
        return empty
    dates, codes = _date_codes(frame["date"])
    last = np.searchsorted(dates.values, days.values, side="right") - 1  # the latest date of frame <= each day
    have = last >= 0
    pos = last[have]
    starts = dates[np.maximum(pos - window + 1, 0)]
    parts = []
    for name in columns:
        ref = reference.features[name]
        values = frame[name].to_numpy(dtype=float)
        ok = np.isfinite(values)
        psi_counts = _window_counts(codes[ok], values[ok], ref.cuts, len(dates), window)[pos]
        ks_counts = _window_counts(codes[ok], values[ok], ref.ks_cuts, len(dates), window)[pos]
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
    return pd.concat(parts, ignore_index=True).sort_values(["date", "feature"], ignore_index=True)


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


# --- live performance ----------------------------------------------------------------------------------------------


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
    thresholds: DriftThresholds = DriftThresholds(),
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


# --- freshness and the day's verdict -------------------------------------------------------------------------------


def freshness(rows_by_date: pd.Series, days: Sequence, min_coverage: float = 0.9) -> pd.DataFrame:
    """Per day: the latest date with feature rows on or before it, how many sessions behind the day that is, and the
    day's row count against the most rows of a day among it and the 20 before (coverage of the universe)."""
    counts = rows_by_date.sort_index()
    counts.index = pd.DatetimeIndex(counts.index).normalize()
    out = []
    for day in pd.DatetimeIndex(pd.to_datetime(list(days))).normalize():
        seen = counts[counts.index <= day]
        seen = seen[seen > 0]
        last = seen.index.max() if len(seen) else pd.NaT
        behind = len(calendar.sessions(last + pd.Timedelta(days=1), day)) if len(seen) else np.nan
        expected = float(seen.iloc[-21:].max()) if len(seen) else np.nan
        today = float(counts.get(day, 0))
        coverage = today / expected if expected and expected > 0 else np.nan
        stale = not len(seen) or behind > 0 or not coverage >= min_coverage
        status = NO_SESSION if not calendar.is_session(day) else (WARN if stale else OK)
        out.append(
            {"date": day, "last_data_date": last, "sessions_behind": behind, "coverage": coverage, "fresh": status}
        )
    return pd.DataFrame(out).set_index("date")


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
