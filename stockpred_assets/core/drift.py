"""Distribution drift between a reference window and a current window of a feature (PSI and KS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

PSI_ALERT = 0.25


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over quantile bins of the reference."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(reference) < bins or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    ref_share = np.histogram(reference, edges)[0] / len(reference)
    cur_share = np.histogram(current, edges)[0] / len(current)
    ref_share, cur_share = np.clip(ref_share, 1e-4, None), np.clip(cur_share, 1e-4, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """PSI and two-sample KS per feature column, worst first."""
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
