"""Dates as files write them: the calendar day each value names, whatever its time or UTC offset."""

from __future__ import annotations

import pandas as pd

# A trailing UTC offset or "Z" ("2022-06-03 00:00:00+00:00", "2023-03-10T00:00:00-05:00")
OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def local_days(values: pd.Series) -> pd.Series:
    """The local calendar day of each value (midnight, tz-naive; NaT where it is not a date): a value's own offset is
    dropped rather than converted, so a bar dated "2023-03-10 00:00:00-05:00" stays on the 10th, and one file may mix
    offsets (daylight saving)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if values.dt.tz is not None else values
        return dates.dt.normalize()
    text = values.astype("string").str.strip().str.replace(OFFSET, "", regex=True)
    return pd.to_datetime(text, errors="coerce", format="mixed").dt.normalize()
