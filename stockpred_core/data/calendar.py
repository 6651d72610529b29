"""NYSE trading sessions (America/New_York) from the exchange calendar."""

from __future__ import annotations

from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

from stockpred_core.settings import load_calendar_settings

EXCHANGE = "XNYS"
# First day the platform knows about: partitions, the simulated market and the calendar start here.
# STOCKPRED_FIRST_SESSION (default 2013-01-02), read once at import: the partitions are built from it.
FIRST_SESSION = load_calendar_settings().first_session.isoformat()


@lru_cache(maxsize=1)
def _calendar() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(EXCHANGE, start=FIRST_SESSION)


def sessions(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """Trading sessions in [start, end] as tz-naive midnight timestamps."""
    cal = _calendar()
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if start > end or end < cal.first_session:
        return pd.DatetimeIndex([], name="date")
    if end > cal.last_session:
        raise ValueError(f"{end.date()} is past the exchange calendar's last known session {cal.last_session.date()}")
    start = max(start, cal.first_session)
    return pd.DatetimeIndex(cal.sessions_in_range(start, end).tz_localize(None), name="date")


def is_session(day: str | pd.Timestamp) -> bool:
    """True when the exchange is open on `day` (a weekday holiday is not a session)."""
    day = pd.Timestamp(day).normalize()
    return len(sessions(day, day)) == 1


def previous_sessions(day: str | pd.Timestamp, count: int) -> pd.DatetimeIndex:
    """The `count` sessions strictly before `day`."""
    day = pd.Timestamp(day).normalize()
    # 1.6 calendar days per session is generous for any holiday cluster.
    window = sessions(day - pd.Timedelta(days=int(count * 1.6) + 10), day - pd.Timedelta(days=1))
    return window[-count:]


def lookback_start(day: str | pd.Timestamp, count: int) -> pd.Timestamp:
    """The first of the `count` sessions before `day`, or the calendar's first session when history is shorter."""
    window = previous_sessions(day, count)
    return window[0] if len(window) else pd.Timestamp(FIRST_SESSION)


def add_sessions(day: str | pd.Timestamp, count: int) -> pd.Timestamp:
    """The session `count` sessions after the last session on or before `day`."""
    day = pd.Timestamp(day).normalize()
    window = sessions(day - pd.Timedelta(days=10), day + pd.Timedelta(days=int(count * 1.6) + 10))
    anchor = window[window <= day][-1]
    return window[window.get_loc(anchor) + count]
