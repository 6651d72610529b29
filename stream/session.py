"""The session so far, per ticker: its running daily bar built from the intraday bars applied to the store.

A bar belongs to the New York session of its start. The running bar of a ticker is what the daily bar of the session
would be if it closed now, defined as the daily bars the batch path ingests are: open, high, low and close of the
bars that start within the regular session (the exchange's hours, early closes included: the first bar's open, the
highest high, the lowest low, the last close), and the volume of every bar of the date, pre-market and after-hours
included, as consolidated daily volume counts them (intraday_reconciliation compares the two the same way). Before
the open a ticker has no running bar (its features stay the close's); after the close only its volume moves.

Only bars the intraday store applied are added (a duplicate or an out-of-order bar is not), so the
running bar is the aggregate of the session's stored bars in time order. After a restart it is rebuilt from the
store (`rebuild`), which holds every bar applied before the crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import numpy as np

from stream.bars import Bar
from stream.sources.simulated import session_bounds_ms
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
        self._early_volume: dict[str, float] = {}  # pre-market volume of tickers without a regular bar yet
        try:
            self.opens_ms, self.closes_ms = session_bounds_ms(session)
        except ValueError:  # not a trading day: no regular session, bars only add volume
            self.opens_ms = self.closes_ms = 0

    def add(self, bar: Bar) -> bool:
        """Fold a bar in (bars come in time order per ticker: the store applies nothing at or before the last);
        whether the ticker has a running bar now."""
        running = self.bars.get(bar.ticker)
        if not self.opens_ms <= bar.ts < self.closes_ms:  # pre-market or after hours: volume only
            if running is None:
                self._early_volume[bar.ticker] = self._early_volume.get(bar.ticker, 0.0) + bar.volume
                return False
            running[4] += bar.volume
            running[5] = bar.end_ms
            return True
        if running is None:
            volume = self._early_volume.pop(bar.ticker, 0.0) + bar.volume
            self.bars[bar.ticker] = [bar.open, bar.high, bar.low, bar.close, volume, bar.end_ms]
            return True
        running[1] = max(running[1], bar.high)
        running[2] = min(running[2], bar.low)
        running[3] = bar.close
        running[4] += bar.volume
        running[5] = bar.end_ms
        return True

    def arrays(self, tickers: Iterable[str]) -> tuple[np.ndarray, ...]:
        """open, high, low, close, volume and last bar end (ms) of `tickers`, as arrays."""
        matrix = np.array([self.bars[t] for t in tickers], dtype=np.float64).reshape(-1, 6)
        return tuple(matrix[:, k] for k in range(6))

    def rebuild(self, store: IntradayStore, tickers: Iterable[str], clock: SessionClock) -> list[str]:
        """Reset to the session's bars the store holds for `tickers` (after a restart); the tickers found. The store
        keys days by UTC date: a session's bars lie on its own UTC date and, for evening bars, the next one."""
        self.bars.clear()
        self._early_volume.clear()
        tickers = list(tickers)
        days = (str(self.session), str(self.session + dt.timedelta(days=1)))
        found = []
        for start in range(0, len(tickers), 500):  # one round trip per 500 tickers
            chunk = tickers[start : start + 500]
            for ticker, bars in zip(chunk, store.day_bars_many(chunk, days), strict=True):
                bars = [b for b in bars if clock.session_of(b.ts) == self.session]
                for bar in bars:
                    self.add(bar)
                if ticker in self.bars:
                    found.append(ticker)
        return found
