"""The raw tables of alternative data (news, social, filings, insider transactions, macro series): their columns, the
keys that make a row unique, and the point-in-time rule every one of them obeys.

Point in time: an item counts for session D only if it was public before D's close. Every raw row carries the UTC
moment it became public (`public_at`: a tweet's or a headline's timestamp, a filing's EDGAR acceptance time, a macro
value's publication time from `stockpred_core.data.macro_calendar`) and `date`, the first NYSE session whose close
(16:00 America/New_York, 13:00 on half days) comes strictly after it: the session the item first counts for, and the
trading-day partition the raw row is stored under. A headline at 15:59 ET counts for that day; at 16:00 or on a
Saturday, for the next session.

Timestamps are tz-naive UTC (like `ingested_at` of the bars); `date` is a tz-naive midnight.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from stockpred_core.data import calendar

KINDS = ("news", "social", "filings", "insider", "macro")

_COMMON = ["provider", "ingested_at", "request_id"]
# news: one row per (ticker, item). `vendor_sentiment` is a score the source computed itself, scaled to [-1, 1]
# (NaN when the source gives text only: the project's sentiment model scores `headline` + `body` then).
NEWS_COLUMNS = [
    "date", "ticker", "public_at", "item_id", "headline", "body", "source", "url", "vendor_sentiment", *_COMMON,
]  # fmt: skip
# social: one row per (ticker, post): a post naming two cashtags collected for both tickers is two rows.
SOCIAL_COLUMNS = [
    "date", "ticker", "public_at", "item_id", "text", "author_id", "author_followers", "reposts", "likes", "lang",
    *_COMMON,
]  # fmt: skip
# filings: one row per EDGAR filing (form 8-K, 10-Q, 10-K, 4, ...); `items` the 8-K item codes ("2.02,9.01").
FILING_COLUMNS = [
    "date", "ticker", "cik", "accession", "form", "filed_on", "public_at", "items", *_COMMON,
]  # fmt: skip
# insider: one row per non-derivative transaction of a Form 4 (code P purchase, S sale, A award, ...); `line` its
# position among the form's transactions; `acquired` True for (A)cquired, False for (D)isposed.
INSIDER_COLUMNS = [
    "date", "ticker", "cik", "accession", "line", "public_at", "insider", "transaction_date", "code", "acquired",
    "shares", "price", *_COMMON,
]  # fmt: skip
# macro: one row per (series, observation period) as known at `public_at` (the series' publication lag applied).
MACRO_COLUMNS = ["date", "series", "observed_on", "value", "public_at", *_COMMON]

COLUMNS = {
    "news": NEWS_COLUMNS,
    "social": SOCIAL_COLUMNS,
    "filings": FILING_COLUMNS,
    "insider": INSIDER_COLUMNS,
    "macro": MACRO_COLUMNS,
}
# What makes a row the same row: a duplicate of it is dropped (and counted), never kept twice.
KEYS = {
    "news": ["ticker", "item_id"],
    "social": ["ticker", "item_id"],
    "filings": ["accession"],
    "insider": ["accession", "line"],
    "macro": ["series", "observed_on"],
}


@lru_cache(maxsize=1)
def _closes() -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Every session's close as tz-naive UTC nanoseconds, and the sessions (from the exchange calendar)."""
    cal = calendar._calendar()
    closes = cal.closes
    return closes.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(), pd.DatetimeIndex(
        closes.index.tz_localize(None) if closes.index.tz is not None else closes.index, name="date"
    )


def session_for(public_at: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """The session each moment (tz-naive UTC) first counts for: the first session whose close is strictly after it.
    NaT where the moment is missing, before the calendar's first session's day (00:00 UTC) or past its last close."""
    moments = pd.to_datetime(pd.Series(public_at)).reset_index(drop=True)
    closes, sessions = _closes()
    values = moments.to_numpy(dtype="datetime64[ns]")
    at = np.searchsorted(closes, values, side="right")  # first close > moment
    valid = ~np.isnat(values) & (at < len(closes)) & (values >= sessions.to_numpy()[0])
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[valid] = sessions.to_numpy()[at[valid]]
    return pd.Series(out, index=pd.Series(public_at).index if isinstance(public_at, pd.Series) else None, name="date")


def to_utc_naive(values: pd.Series) -> pd.Series:
    """Timestamps (strings with any UTC offsets, or datetimes) as tz-naive UTC; a value without an offset is taken
    to be UTC. Unparseable values become NaT (validation rejects them with a reason)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(values, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)


def local_to_utc_naive(values: pd.Series, tz: str = "America/New_York") -> pd.Series:
    """Naive local wall-clock times (e.g. an EDGAR acceptance time, which is Eastern) as tz-naive UTC."""
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    return parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC").dt.tz_localize(None)


def empty(kind: str) -> pd.DataFrame:
    """A zero-row frame of one kind with its columns (an empty partition keeps its schema)."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS[kind]})
