"""The provider's side of rate limiting: its pace through the project's one rate limiter
(`stockpred_core.resilience.rate_limit`), plus its daily quota, which raises instead of waiting."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from stockpred_core.io.http_client import QuotaExceededError
from stockpred_core.resilience.rate_limit import LocalRateLimiter

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class RateLimiter:
    """The provider's pace and quota: `requests_per_minute` (bursts of `burst`) through the project's one rate limiter,
    plus an optional per-day cap that raises instead of waiting (a quota, not a rate: waiting would take hours)."""

    def __init__(
        self,
        requests_per_minute: float,
        requests_per_day: int | None = None,
        *,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        today: Callable[[], dt.date] = _utc_today,
    ) -> None:
        if requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be > 0")
        self.rate_per_second = requests_per_minute / 60.0
        self.burst = max(1, burst)
        self.requests_per_day = requests_per_day
        self._pace = LocalRateLimiter(clock=clock, sleep=sleep)
        self._today = today
        self._day = today()
        self._spent_day: dt.date | None = None
        self.used_today = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for the next slot; raise QuotaExceededError when today's cap is spent."""
        with self._lock:
            self._roll_day()
            if self._spent_day == self._day:
                raise QuotaExceededError(f"the server reported today's quota spent ({self._day}); resets tomorrow")
            if self.requests_per_day is not None and self.used_today >= self.requests_per_day:
                raise QuotaExceededError(
                    f"daily request cap of {self.requests_per_day} spent for {self._day}; resets at midnight UTC"
                )
            self.used_today += 1
        self._pace.acquire("requests", self.rate_per_second, self.burst)

    def exhaust_today(self) -> None:
        """The server says today's quota is spent: refuse the rest of the day without asking it again."""
        with self._lock:
            self._roll_day()
            self._spent_day = self._day

    def _roll_day(self) -> None:
        if self._today() != self._day:
            self._day, self.used_today = self._today(), 0
