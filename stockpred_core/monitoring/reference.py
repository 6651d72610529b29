"""The reference a model's live data is compared with, fitted once per champion on the features of its training window.

Per feature: the PSI bins (the reference's deciles, unique cut points, so a discrete feature keeps one bin per value)
with the reference's share in each, the KS grid (its percentiles and its CDF there), and the ordinary range: the
largest PSI that a `window`-session window of the reference itself reaches against the whole reference. Features of
the market's state (the VIX, the regime, 60-session correlation, volatility) move in clusters lasting weeks, so a calm
month reads as drift against two years that hold a storm; `daily_drift.classify` weighs a day's PSI against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.monitoring.statistics import (
    KS_POINTS,
    PSI_BINS,
    bin_index,
    date_codes,
    fit_cuts,
    psi_of_shares,
    window_counts,
)

PREDICTION = "prediction"  # the pseudo-feature holding the model's predictions in a reference


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


def build_reference(
    frame: pd.DataFrame, columns: Sequence[str], window: int, bins: int = PSI_BINS, ks_points: int = KS_POINTS
) -> DriftReference:
    """The reference of `columns` in `frame` (rows with a `date`): bins, KS grid and each column's ordinary range."""
    if frame.empty:
        raise ValueError("the reference window holds no rows")
    dates, codes = date_codes(frame["date"])
    features = {}
    for name in columns:
        values = frame[name].to_numpy(dtype=float)
        ok = np.isfinite(values)
        if not ok.any():
            continue  # a column without a single value has no distribution to drift from
        kept = np.sort(values[ok])
        cuts, ks_cuts = fit_cuts(kept, bins), fit_cuts(kept, ks_points)
        shares = np.bincount(bin_index(values[ok], cuts), minlength=len(cuts) + 1) / len(kept)
        windows = window_counts(codes[ok], values[ok], cuts, len(dates), window)[window - 1 :]
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
