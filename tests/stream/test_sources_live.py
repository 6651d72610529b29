"""The live Yahoo 1m source through the project's HttpClient against a real local HTTP server: only complete, new bars
per poll; the recorded (weekend, empty) 1m response; a 429 with Retry-After; a 5xx run that opens the breaker; and the
rate limiter pacing the requests.

The only recorded 1m chart response (../shared/data/providers/yahoo/chart/...-interval-1m.json) has no bars (a weekend),
so the responses with bars are built here in that response's documented shape, its `meta` kept, from REAL minute bars
(Lean's AAPL 2014-06-05, prices as Lean recorded them)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import random
from collections.abc import Iterator

import pytest
from support import SHARED_DATA
from support.recorded_server import RecordedServer, Reply

from stockpred_core.io.http_client import HttpClient
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.rate_limit import LocalRateLimiter
from stockpred_core.resilience.retry import RetryPolicy
from stream.bars import Bar
from stream.sources import YahooLive
from stream.sources.lean import midnight_ms, read_trade_zip
from stream.sources.yahoo_live import Pace

RECORDED_1M = (
    SHARED_DATA / "providers/yahoo/chart/chart-AAPL-2025-02-01-to-2025-02-02-includePrePost-false-interval-1m.json"
)
AAPL_DAY = SHARED_DATA / "intraday/lean/minute/aapl/20140605_trade.zip"
OPEN_S = (midnight_ms(dt.date(2014, 6, 5)) + 34_200_000) // 1000  # 09:30 New York, epoch s

pytestmark = pytest.mark.skipif(not RECORDED_1M.is_file(), reason=f"reference data not found at {SHARED_DATA}")


@pytest.fixture
def server() -> Iterator[RecordedServer]:
    """A real HTTP server of its own per test (a few ms to start): no scripted reply leaks into the next test."""
    started = RecordedServer().start()
    yield started
    started.stop()


def recorded_body() -> dict:
    return json.loads(RECORDED_1M.read_text())["response"]["bodyJson"]


def lean_minutes(count: int) -> list[tuple[int, list[float]]]:
    """AAPL's first `count` regular-session minutes of 2014-06-05: (epoch s, [o, h, l, c, v])."""
    raw = read_trade_zip(AAPL_DAY)
    raw = raw[raw["ms"] >= 34_200_000].head(count)
    rows = zip(raw["ms"], *(raw[c] / 10_000 for c in ("open", "high", "low", "close")), raw["volume"], strict=True)
    return [(OPEN_S + (ms - 34_200_000) // 1000, [o, h, lo, c, float(v)]) for ms, o, h, lo, c, v in rows]


def chart_body(minutes: list[tuple[int, list[float]]], in_progress_at: int | None = None) -> str:
    """The recorded response with these minutes (plus, as Yahoo serves, the current minute stamped with its last
    trade's time) and a minute without trades (nulls)."""
    body = copy.deepcopy(recorded_body())
    rows = [(t, v) for t, v in minutes]
    if in_progress_at is not None:
        rows.append((in_progress_at, rows[-1][1]))
    result = body["chart"]["result"][0]
    result["timestamp"] = [t for t, _ in rows]
    names = ("open", "high", "low", "close", "volume")
    result["indicators"]["quote"] = [{name: [v[i] for _, v in rows] for i, name in enumerate(names)}]
    if len(rows) > 3:
        for key in result["indicators"]["quote"][0]:
            result["indicators"]["quote"][0][key][2] = None  # no trade in the third minute
    return json.dumps(body)


class Clock:
    """Epoch seconds that move only when the source sleeps (so a test covers minutes of session instantly)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def client(server: RecordedServer, *, breaker: CircuitBreaker | None = None, slept: list | None = None) -> HttpClient:
    sleeps = slept if slept is not None else []
    return HttpClient(
        server.url,
        retry=RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_max_s=30.0),
        breaker=breaker,
        sleep=sleeps.append,
        rng=random.Random(0),
    )


def run(source: YahooLive) -> list[list[Bar]]:
    async def go() -> list[list[Bar]]:
        return [batch async for batch in source]

    return asyncio.run(go())


def test_each_poll_yields_only_complete_new_bars(server: RecordedServer) -> None:
    minutes = lean_minutes(8)
    path = "/v8/finance/chart/AAPL"
    server.route(
        path,
        Reply.json(chart_body(minutes[:5], in_progress_at=OPEN_S + 5 * 60 + 17)),  # polled at 09:35:20
        Reply.json(chart_body(minutes[:6], in_progress_at=OPEN_S + 6 * 60 + 1)),  # at 09:36:02
        Reply.json(chart_body(minutes[:8])),  # at 09:37:02, 09:37 already stamped on a minute: not complete yet
    )
    clock = Clock(OPEN_S + 5 * 60 + 20)
    source = YahooLive(["AAPL"], client=client(server), max_polls=3, clock=clock, sleep=clock.sleep)
    batches = run(source)
    bars = [b for batch in batches for b in batch]
    expected = [Bar("AAPL", t * 1000, 60, *v) for t, v in minutes[:7] if t != minutes[2][0]]
    assert bars == expected  # the null minute skipped, in-progress entries never yielded, nothing twice
    assert [len(batch) for batch in batches] == [1] * 6
    assert server.hits_for(path) == 3 and clock.now == OPEN_S + 7 * 60 + 2  # woke 2 s after each minute's end
    assert all(hit.query == {"interval": "1m", "range": "1d", "includePrePost": "false"} for hit in server.hits)
    assert bars[0] == Bar("AAPL", OPEN_S * 1000, 60, *minutes[0][1]) and bars[0].open == 646.25


def test_recorded_weekend_response_yields_nothing(server: RecordedServer) -> None:
    server.route("/v8/finance/chart/AAPL", Reply.json(json.dumps(recorded_body())))
    clock = Clock(1738454400)
    source = YahooLive(["AAPL"], client=client(server), max_polls=1, clock=clock, sleep=clock.sleep)
    assert run(source) == [] and source.failures == [] and server.hits_for("/v8/finance/chart/AAPL") == 1


def test_429_with_retry_after_is_waited_then_served(server: RecordedServer) -> None:
    minutes = lean_minutes(2)
    server.route(
        "/v8/finance/chart/AAPL",
        Reply.text("Too Many Requests", 429, headers={"Retry-After": "7"}),
        Reply.json(chart_body(minutes)),
    )
    slept: list[float] = []
    clock = Clock(OPEN_S + 180)
    source = YahooLive(["AAPL"], client=client(server, slept=slept), max_polls=1, clock=clock, sleep=clock.sleep)
    assert [b.ts // 1000 for batch in run(source) for b in batch] == [t for t, _ in minutes]
    assert slept == [7.0] and server.hits_for("/v8/finance/chart/AAPL") == 2 and source.failures == []


def test_a_5xx_run_opens_the_breaker_and_the_stream_recovers(server: RecordedServer) -> None:
    minutes = lean_minutes(2)
    path = "/v8/finance/chart/AAPL"
    server.route(path, Reply.text("upstream down", 503))
    clock = Clock(OPEN_S + 180)
    breaker = CircuitBreaker(failure_threshold=3, reset_s=90.0, clock=clock)
    http = client(server, breaker=breaker)
    source = YahooLive(["AAPL", "MSFT"], client=http, max_polls=2, clock=clock, sleep=clock.sleep)
    server.route("/v8/finance/chart/MSFT", Reply.text("upstream down", 503))
    assert run(source) == []
    # Poll 1: AAPL's three attempts open the breaker; MSFT is refused without a request. Poll 2 (a minute later, still
    # inside the 90 s cool-down): both refused, nothing sent.
    assert server.hits_for(path) == 3 and server.hits_for("/v8/finance/chart/MSFT") == 0
    assert source.failures == [
        ("AAPL", "transient"),
        ("MSFT", "circuit_open"),
        ("AAPL", "circuit_open"),
        ("MSFT", "circuit_open"),
    ]
    assert breaker.state == "open"
    server.route(path, Reply.json(chart_body(minutes)))
    server.route("/v8/finance/chart/MSFT", Reply.json(chart_body([])))
    clock.now += 60  # past the cool-down: the next request is the trial, and it succeeds
    source.max_polls = 3
    bars = [b for batch in run(source) for b in batch]
    assert [(b.ticker, b.ts // 1000) for b in bars] == [("AAPL", t) for t, _ in minutes] and breaker.state == "closed"


def test_requests_are_paced_by_the_shared_rate_limiter(server: RecordedServer) -> None:
    for ticker in ("AAPL", "MSFT", "IBM"):
        server.route(f"/v8/finance/chart/{ticker}", Reply.json(json.dumps(recorded_body())))
    waits: list[float] = []
    limiter = LocalRateLimiter(clock=lambda: 1000.0, sleep=waits.append)  # time stands still: every wait is owed
    http = HttpClient(server.url, limiter=Pace(requests_per_minute=120, limiter=limiter))
    clock = Clock(OPEN_S)
    run(YahooLive(["AAPL", "MSFT", "IBM"], client=http, max_polls=1, clock=clock, sleep=clock.sleep))
    assert waits == [0.5, 1.0] and len(server.hits) == 3  # 2 a second: the 2nd waits 0.5 s, the 3rd 1 s
