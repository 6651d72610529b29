"""Freshness of the data a day's report reads: how far behind the day its latest feature rows are, and how much of
the universe they cover."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.monitoring.verdict import NO_SESSION, OK, WARN


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
