"""Incremental ingestion: which tickers a run must fetch, and how fetched rows combine with the ones kept."""

from __future__ import annotations

import pandas as pd

from stockpred_core.data.schemas import REJECT_COLUMNS, empty_frame


def tickers_to_fetch(
    universe: list[str],
    sessions: pd.DatetimeIndex,
    existing: pd.DataFrame,
    refetch: bool = False,
    max_age: pd.Timedelta | None = None,
    now: pd.Timestamp | None = None,
) -> list[str]:
    """Tickers missing a bar on any of `sessions`, or holding one older than `max_age`; all of them on `refetch`."""
    if refetch or existing.empty or len(sessions) == 0:
        return list(universe) if len(sessions) else []
    have = existing[existing["date"].isin(sessions)]
    counts = have.groupby("ticker")["date"].nunique()
    missing = [t for t in universe if counts.get(t, 0) < len(sessions)]
    stale: set[str] = set()
    if max_age is not None:
        now = now if now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
        stale = set(have.loc[have["ingested_at"] < now - max_age, "ticker"])
    return [t for t in universe if t in set(missing) | stale]


def combine(
    existing: pd.DataFrame,
    fetched: pd.DataFrame | None,
    fetched_tickers: set[str],
    sessions: pd.DatetimeIndex,
    universe: list[str],
    columns: list[str],
) -> pd.DataFrame:
    """The window's rows: fresh ones for tickers fetched successfully, the kept ones for every other universe ticker.

    A ticker whose refetch failed keeps its earlier rows: a failure never deletes data.
    """
    parts = []
    if len(existing):
        parts.append(existing[~existing["ticker"].isin(fetched_tickers) & existing["ticker"].isin(universe)])
    if fetched is not None and len(fetched):
        parts.append(fetched[fetched["date"].isin(sessions)])
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_frame(columns)
    return pd.concat(parts, ignore_index=True).sort_values(["date", "ticker"], ignore_index=True)


def off_calendar(fetched: pd.DataFrame | None, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Fetched rows dated on no session of the window (a weekend, a holiday) as REJECT_COLUMNS rows."""
    if fetched is None or fetched.empty:
        return empty_frame(REJECT_COLUMNS)
    off = fetched[~fetched["date"].isin(sessions)]
    if off.empty:
        return empty_frame(REJECT_COLUMNS)
    raw = off[["date", "ticker", "open", "high", "low", "close", "volume"]].astype(str).agg(",".join, axis=1)
    return pd.DataFrame(
        {
            "source": off["provider"],  # not the per-fetch request id: the same row refetched is the same reject
            "ticker": off["ticker"],
            "date": off["date"].dt.strftime("%Y-%m-%d"),
            "raw": raw,
            "reason": off["date"].dt.strftime("%Y-%m-%d (%A) is not an NYSE session"),
            "provider": off["provider"],
            "rejected_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        }
    )[REJECT_COLUMNS]


def keep_rejects(earlier: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The rejects table after a run: earlier rows plus new ones, one row per (provider, source, raw) (the first
    rejection is kept: a row rejected again by a later run is the same row)."""
    parts = [f for f in (earlier, new) if len(f)]
    if not parts:
        return empty_frame(REJECT_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)[REJECT_COLUMNS]
    return frame.drop_duplicates(["provider", "source", "raw"], keep="first").reset_index(drop=True)
