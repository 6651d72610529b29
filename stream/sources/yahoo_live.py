"""Yahoo's v8 chart API at 1m, polled during the session: each poll yields the bars that are complete and new.

Requests go through the project's one HTTP client (`stockpred_core.io.http_client.HttpClient`): the retry policy
(429 Retry-After honoured), the circuit breaker, and a pace on the project's rate limiter. A ticker that fails a poll is
counted in `failures` and tried again at the next one; the stream keeps flowing for the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from stockpred_core.io.http_client import HttpClient, ProviderError, UnknownTickerError
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.rate_limit import LocalRateLimiter
from stockpred_core.resilience.retry import RetryPolicy
from stream.bars import BadBar, Bar
from stream.sources.base import AsyncSleep, BarSource

log = logging.getLogger(__name__)
BASE_URL = "https://query2.finance.yahoo.com"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) stockpred/0.1"  # Yahoo refuses requests without a browser-like agent
INTERVAL_S = 60


class Pace:
    """`requests_per_minute` (bursts of `burst`) on the project's rate limiter, as HttpClient's limiter."""

    def __init__(self, requests_per_minute: float, burst: int = 1, limiter: LocalRateLimiter | None = None) -> None:
        self.rate_per_second, self.burst = requests_per_minute / 60.0, burst
        self.limiter = limiter or LocalRateLimiter()

    def acquire(self) -> None:
        self.limiter.acquire("yahoo-chart", self.rate_per_second, self.burst)


def default_client(base_url: str = BASE_URL, requests_per_minute: float = 60.0) -> HttpClient:
    return HttpClient(
        base_url,
        headers={"User-Agent": USER_AGENT},
        retry=RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=20.0),
        limiter=Pace(requests_per_minute),
        breaker=CircuitBreaker(failure_threshold=5, reset_s=60.0),
    )


def chart_bars(ticker: str, payload: Any, now_s: float) -> list[Bar]:
    """The complete 1m bars of one chart response: minute-aligned (the last, in-progress entry is stamped with the
    latest trade's time), ended by `now_s`, with no null field (minutes without trades)."""
    chart = payload["chart"]
    if chart.get("error"):
        raise UnknownTickerError(f"{ticker}: {chart['error'].get('description', chart['error'])}")
    result = chart["result"][0]
    stamps = result.get("timestamp") or []
    quote = result["indicators"]["quote"][0]
    columns = [quote.get(name) or [None] * len(stamps) for name in ("open", "high", "low", "close", "volume")]
    bars = []
    for stamp, *values in zip(stamps, *columns, strict=True):
        if stamp % INTERVAL_S or stamp + INTERVAL_S > now_s or any(v is None for v in values):
            continue
        try:
            bars.append(Bar(ticker, stamp * 1000, INTERVAL_S, *(float(v) for v in values)))
        except BadBar as exc:
            log.warning("%s: dropped a bar at %d: %s", ticker, stamp, exc)
    return bars


class YahooLive(BarSource):
    """Polls each ticker's 1m chart after every minute's end (+ `settle_s`), until `until_s` (epoch seconds) or
    `max_polls`; yields the bars new since the previous poll, grouped by end time."""

    def __init__(
        self,
        tickers: Sequence[str],
        *,
        client: HttpClient | None = None,
        until_s: float | None = None,
        max_polls: int | None = None,
        settle_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        sleep: AsyncSleep = asyncio.sleep,
    ) -> None:
        self.tickers = [t.upper() for t in tickers]
        self.client = client or default_client()
        self.until_s, self.max_polls, self.settle_s = until_s, max_polls, settle_s
        self._clock, self._sleep = clock, sleep
        self.last_ts: dict[str, int] = {}  # newest bar start yielded per ticker (epoch ms)
        self.failures: list[tuple[str, str]] = []  # (ticker, error kind) per failed fetch
        self.polls = 0

    async def batches(self) -> AsyncIterator[list[Bar]]:
        while True:
            fresh = await self.poll()
            for end in sorted({bar.end_ms for bar in fresh}):
                yield [bar for bar in fresh if bar.end_ms == end]
            now = self._clock()
            if (self.max_polls is not None and self.polls >= self.max_polls) or (
                self.until_s is not None and now >= self.until_s
            ):
                return
            next_poll = (now // INTERVAL_S + 1) * INTERVAL_S + self.settle_s  # just after the next bar ends
            await self._sleep(max(0.0, next_poll - now))

    async def poll(self) -> list[Bar]:
        """One round over the tickers: the complete bars each has that were not yielded before, in ticker order."""
        self.polls += 1
        fresh = []
        for ticker in self.tickers:
            try:
                reply = await asyncio.to_thread(self.client.get_json, f"/v8/finance/chart/{ticker}", _PARAMS)
                bars = chart_bars(ticker, reply.payload, self._clock())
            except ProviderError as exc:
                self.failures.append((ticker, exc.kind))
                log.warning("%s: poll %d failed (%s): %s", ticker, self.polls, exc.kind, exc)
                continue
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                self.failures.append((ticker, "bad_response"))
                log.warning("%s: chart not shaped as documented (%s: %s)", ticker, type(exc).__name__, exc)
                continue
            new = [bar for bar in bars if bar.ts > self.last_ts.get(ticker, -1)]
            if new:
                self.last_ts[ticker] = new[-1].ts
            fresh += new
        return fresh


_PARAMS = {"interval": "1m", "range": "1d", "includePrePost": "false"}
