"""PSI and KS of values over fixed bins, and per-date bin counts summed over trailing windows.

A window's PSI is sum((c - r) * ln(c / r)) over the reference's bins, shares floored at 1e-4: warn at 0.1, alert at
0.25 (the usual rule of thumb). The KS statistic is the largest CDF gap on the reference's percentile grid (within
0.01 of the exact two-sample statistic, without keeping the reference rows). All days of a range are computed at once
from per-date bin counts (cumulative sums), so a year of daily windows costs about as much as one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

PSI_WARN = 0.1
PSI_ALERT = 0.25
PSI_BINS = 10
KS_POINTS = 100
SHARE_FLOOR = 1e-4


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


# --- trailing windows of dated rows ----------------------------------------------------------------------------------


def date_codes(dates: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The sorted distinct dates (normalized) and each row's position among them."""
    codes, uniques = pd.factorize(pd.to_datetime(dates).dt.normalize(), sort=True)
    return pd.DatetimeIndex(uniques), codes


def _counts(codes: np.ndarray, bins: np.ndarray, n_dates: int, n_bins: int) -> np.ndarray:
    """(n_dates, n_bins) counts of rows per date and bin."""
    flat = np.bincount(codes * n_bins + bins, minlength=n_dates * n_bins)
    return flat.reshape(n_dates, n_bins).astype(float)


def trailing_sums(counts: np.ndarray, window: int) -> np.ndarray:
    """Row i: the sum of rows max(0, i - window + 1)..i."""
    total = np.cumsum(counts, axis=0)
    out = total.copy()
    out[window:] -= total[:-window]
    return out


def window_counts(codes: np.ndarray, values: np.ndarray, cuts: np.ndarray, n_dates: int, window: int) -> np.ndarray:
    """(n_dates, bins) counts of the values in each bin over the `window` dates up to each date."""
    return trailing_sums(_counts(codes, bin_index(values, cuts), n_dates, len(cuts) + 1), window)
