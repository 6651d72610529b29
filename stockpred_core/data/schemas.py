"""Canonical table schemas (pandera). Providers produce `BarSchema` rows; validation enforces them."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

BAR_COLUMNS = ["date", "ticker", "open", "high", "low", "close", "adj_close", "volume", "provider", "ingested_at"]
# Raw tables keep the request that produced each row, so a bar can be traced to the payload it came from.
RAW_BAR_COLUMNS = [*BAR_COLUMNS, "request_id"]
# Corporate actions: kind "split" (value = new shares per old share, 4.0 for a 4:1 split) or "dividend" (cash/share).
EVENT_COLUMNS = ["date", "ticker", "kind", "value", "provider"]
# One row per ticker that could not be fetched: the dead-letter record.
FAILURE_COLUMNS = ["ticker", "provider", "kind", "reason", "retryable", "attempted_at", "requests", "request_id"]
# One row per source row the raw layer cannot hold (no valid date, text in a number, off the calendar): its text, why.
REJECT_COLUMNS = ["source", "ticker", "date", "raw", "reason", "provider", "rejected_at"]


class BarSchema(pa.DataFrameModel):
    """One daily bar per (date, ticker): the canonical shape every provider is mapped to."""

    date: Series[pd.Timestamp] = pa.Field(nullable=False)
    ticker: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1, "max_value": 16})
    open: Series[float] = pa.Field(gt=0, nullable=False)
    high: Series[float] = pa.Field(gt=0, nullable=False)
    low: Series[float] = pa.Field(gt=0, nullable=False)
    close: Series[float] = pa.Field(gt=0, nullable=False)
    adj_close: Series[float] = pa.Field(gt=0, nullable=False)
    volume: Series[float] = pa.Field(ge=0, nullable=False)
    provider: Series[str] = pa.Field(nullable=False)
    ingested_at: Series[pd.Timestamp] = pa.Field(nullable=False)

    @pa.dataframe_check(error="high must be >= max(open, close) and low <= min(open, close)")
    def ohlc_consistent(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["high"] >= df[["open", "close"]].max(axis=1)) & (df["low"] <= df[["open", "close"]].min(axis=1))

    class Config:
        strict = True
        coerce = True
        unique = ("date", "ticker")
        ordered = False


def empty_frame(columns: list[str]) -> pd.DataFrame:
    """A zero-row frame that still has its columns (so Parquet files of empty partitions keep a schema)."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def empty_bars() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes (a holiday partition)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS})
    frame["date"] = pd.Series(dtype="datetime64[ns]")
    frame["ingested_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["ticker"] = pd.Series(dtype="object")
    frame["provider"] = pd.Series(dtype="object")
    return frame[BAR_COLUMNS]
