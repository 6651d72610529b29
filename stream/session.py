"""The session so far, per ticker: its running daily bar built from the intraday bars applied to the store.

A bar belongs to the New York session of its start. The running bar of a ticker is what the daily bar of the session
would be if it closed now: the first bar's open, the highest high, the lowest low, the last bar's close and the
volume summed. Only bars the intraday store applied are added (a duplicate or an out-of-order bar is not), so the
running bar is the aggregate of the session's stored bars in time order. After a restart it is rebuilt from the
store (`rebuild`), which holds every bar applied before the crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import numpy as np

from stream.bars import Bar
from stream.worker import IntradayStore

EXCHANGE = ZoneInfo("America/New_York")
_HOUR_MS = 3_600_000


class SessionClock:
    """The New York session date of a bar's start, memoized per hour (zone conversions cost more than the rest)."""

    def __init__(self) -> None:
        self._by_hour: dict[int, dt.date] = {}

    def session_of(self, ts_ms: int) -> dt.date:
        hour = ts_ms // _HOUR_MS
        found = self._by_hour.get(hour)
        if found is None:
            if len(self._by_hour) > 10_000:
                self._by_hour.clear()
            found = self._by_hour[hour] = dt.datetime.fromtimestamp(hour * 3600, EXCHANGE).date()
        return found


class RunningBars:
    """The running daily bars of one session: ticker -> [open, high, low, close, volume, last bar end (ms)]."""

    def __init__(self, session: dt.date) -> None:
        self.session = session
        self.bars: dict[str, list[float]] = {}

    def add(self, bar: Bar) -> None:
        """Fold a bar in (bars come in time order per ticker: the store applies nothing at or before the last)."""
        running = self.bars.get(bar.ticker)
        if running is None:
            self.bars[bar.ticker] = [bar.open, bar.high, bar.low, bar.close, bar.volume, bar.end_ms]
            return
        running[1] = max(running[1], bar.high)
        running[2] = min(running[2], bar.low)
        running[3] = bar.close
        running[4] += bar.volume
        running[5] = bar.end_ms

    def arrays(self, tickers: Iterable[str]) -> tuple[np.ndarray, ...]:
        """open, high, low, close, volume and last bar end (ms) of `tickers`, as arrays."""
        matrix = np.array([self.bars[t] for t in tickers], dtype=np.float64).reshape(-1, 6)
        return tuple(matrix[:, k] for k in range(6))

    def rebuild(self, store: IntradayStore, tickers: Iterable[str], clock: SessionClock) -> list[str]:
        """Reset to the session's bars the store holds for `tickers` (after a restart); the tickers found. The store
        keys days by UTC date: a session's bars lie on its own UTC date and, for evening bars, the next one."""
        self.bars.clear()
        tickers = list(tickers)
        days = (str(self.session), str(self.session + dt.timedelta(days=1)))
        found = []
        for start in range(0, len(tickers), 500):  # one round trip per 500 tickers
            chunk = tickers[start : start + 500]
            for ticker, bars in zip(chunk, store.day_bars_many(chunk, days), strict=True):
                bars = [b for b in bars if clock.session_of(b.ts) == self.session]
                for bar in bars:
                    self.add(bar)
                if bars:
                    found.append(ticker)
        return found
