"""The shared HTTP client under faults injected by a real local HTTP server (429 and Retry-After, 5xx, timeouts,
connection resets, bad bodies), its circuit breaker, fetch_bars isolating failed tickers, and the rate limiter and
retry policy on their own."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from provider_recordings import (
    AAPL_CHART,
    API_KEY,
    MSFT_DIVIDENDS,
    V8_NOT_FOUND,
    MakeAlphaVantage,
    MakeYahoo,
    T,
    chart,
    yahoo_body,
)
from support.recorded_server import RecordedServer, Reply

from stockpred_core.io.http_client import (
    BadResponseError,
    CircuitOpenError,
    HttpClient,
    QuotaExceededError,
    TransientError,
)
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_resources.providers.rate_limit import RateLimiter

# --- Faults -------------------------------------------------------------------------------------------------------


def test_429_with_retry_after_then_success(server: RecordedServer, yahoo: MakeYahoo, providers_dir: Path) -> None:
    ok = Reply.json(yahoo_body(providers_dir, AAPL_CHART))
    server.route(chart("AAPL"), Reply.text("Too Many Requests", 429, headers={"Retry-After": "0"}), ok)
    history = yahoo().fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert len(history.bars) == 49 and history.requests == 2 and len(server.hits) == 2
    # One logical request: both attempts carry its id, and so do the rows.
    assert {hit.headers["x-request-id"] for hit in server.hits} == set(history.bars["request_id"])


def test_a_document_that_is_not_json_is_fetched_retried_and_refused_like_json(server: RecordedServer) -> None:
    slept: list[float] = []
    client = HttpClient(server.url, retry=RetryPolicy(3, backoff_base_s=0.001), sleep=slept.append)
    xml = b"<ownershipDocument><documentType>4</documentType></ownershipDocument>"
    server.route("/doc.xml", Reply.text("busy", 503), Reply(body=xml, content_type="application/xml"))
    reply = client.get_document("/doc.xml")
    assert (reply.body, reply.attempts, len(slept)) == (xml, 2, 1)
    assert [hit.headers["x-request-id"] for hit in server.hits] == [reply.request_id] * 2
    server.route("/gone.xml", Reply.text("Not Found", 404))
    with pytest.raises(BadResponseError, match="HTTP 404"):  # a 4xx is not retried
        client.get_document("/gone.xml")
    assert server.hits_for("/gone.xml") == 1
    client.close()


def test_retry_after_is_honoured_and_capped(server: RecordedServer) -> None:
    slept: list[float] = []
    client = HttpClient(server.url, retry=RetryPolicy(4, backoff_base_s=0.001, backoff_max_s=20), sleep=slept.append)
    server.route(
        "/x",
        Reply.text("slow down", 429, headers={"Retry-After": "7"}),
        Reply.text("slow down", 429, headers={"Retry-After": "3600"}),
        Reply.json('{"ok": 1}'),
    )
    payload, request_id, attempts = client.get_json("/x", {"q": "1"})
    assert (payload, attempts, slept) == ({"ok": 1}, 3, [7.0, 20.0])
    assert [hit.headers["x-request-id"] for hit in server.hits] == [request_id] * 3
    client.close()


def test_repeated_5xx_gives_up_after_max_attempts(server: RecordedServer, yahoo: MakeYahoo) -> None:
    server.route(chart("AAPL"), Reply.text("Internal Server Error", 500))
    with pytest.raises(TransientError, match=r"HTTP 500 Internal Server Error; gave up after 3 attempts") as caught:
        yahoo().fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert caught.value.requests == 3 and len(server.hits) == 3


def test_timeouts_are_retried_then_transient(server: RecordedServer, yahoo: MakeYahoo) -> None:
    server.route(chart("AAPL"), Reply.json("{}", delay_s=0.5))
    with pytest.raises(TransientError, match=r"timed out \(ReadTimeout\); gave up after 2 attempts") as caught:
        yahoo(timeout_s=0.15, max_attempts=2).fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert caught.value.requests == 2 and len(server.hits) == 2


def test_connection_reset_is_retried(server: RecordedServer, yahoo: MakeYahoo, providers_dir: Path) -> None:
    server.route(chart("AAPL"), Reply(reset=True), Reply.json(yahoo_body(providers_dir, AAPL_CHART)))
    history = yahoo().fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert len(history.bars) == 49 and history.requests == 2 and len(server.hits) == 2


def test_connection_resets_outliving_the_retries(server: RecordedServer, alphavantage: MakeAlphaVantage) -> None:
    server.route("/query", Reply(reset=True))
    with pytest.raises(TransientError, match=r"connection failed .*gave up after 3 attempts") as caught:
        alphavantage().fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert caught.value.requests == 3 and API_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.json('{"chart": {"result": [{"meta": {"currency": "USD"'), "truncated JSON body"),
        (
            Reply.text("<html><body>Service temporarily unavailable</body></html>", 200, content_type="text/html"),
            "non-JSON body",
        ),
    ],
)
def test_bad_bodies_are_retried_then_bad_response(
    server: RecordedServer, yahoo: MakeYahoo, reply: Reply, message: str
) -> None:
    server.route(chart("AAPL"), reply)
    with pytest.raises(BadResponseError, match=f"{message}.*gave up after 3 attempts") as caught:
        yahoo().fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert caught.value.requests == 3 and len(server.hits) == 3


def test_circuit_breaker_opens_and_refuses_without_touching_the_server(
    server: RecordedServer, yahoo: MakeYahoo, providers_dir: Path
) -> None:
    server.route(chart("BOOM"), Reply.text("Bad Gateway", 502))
    server.route(chart("AAPL"), Reply.json(yahoo_body(providers_dir, AAPL_CHART)))
    provider = yahoo(max_attempts=2, circuit_failure_threshold=3, circuit_reset_s=60)
    with pytest.raises(TransientError):
        provider.fetch_history("BOOM", T("2020-08-31"), T("2020-11-07"))  # failures 1 and 2
    with pytest.raises(CircuitOpenError, match="circuit open after 3 consecutive failed requests") as caught:
        provider.fetch_history("BOOM", T("2020-08-31"), T("2020-11-07"))  # failure 3 opens it mid-retry
    assert caught.value.requests == 1 and len(server.hits) == 3
    with pytest.raises(CircuitOpenError) as caught:
        provider.fetch_history("AAPL", T("2020-08-31"), T("2020-11-07"))
    assert caught.value.requests == 0 and len(server.hits) == 3


def test_half_open_circuit_lets_one_trial_through(server: RecordedServer) -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_s=30, clock=lambda: now[0])
    client = HttpClient(server.url, retry=RetryPolicy(max_attempts=1), breaker=breaker, sleep=lambda s: None)
    server.route("/x", Reply.text("Service Unavailable", 503), Reply.text("still down", 503), Reply.json('{"ok": 1}'))
    with pytest.raises(TransientError):
        client.get_json("/x")
    now[0] = 29.9
    with pytest.raises(CircuitOpenError, match=r"retry in 0\.1s"):
        client.get_json("/x")
    now[0] = 30.0  # half-open: the trial fails, so it opens again for a full cool-down
    with pytest.raises(TransientError):
        client.get_json("/x")
    assert breaker.state == "open" and server.hits_for("/x") == 2
    now[0] = 45.0
    with pytest.raises(CircuitOpenError):
        client.get_json("/x")
    now[0] = 60.0
    assert client.get_json("/x").payload == {"ok": 1}
    assert breaker.state == "closed" and breaker.failures == 0 and server.hits_for("/x") == 3
    client.close()


def test_fetch_bars_isolates_failures_and_counts_requests(
    server: RecordedServer, yahoo: MakeYahoo, providers_dir: Path
) -> None:
    server.route(chart("AAPL"), Reply.json(yahoo_body(providers_dir, AAPL_CHART)))
    server.route(chart("MSFT"), Reply.json(yahoo_body(providers_dir, MSFT_DIVIDENDS)))
    server.route(chart("ZZZZ"), Reply.json(V8_NOT_FOUND, status=404))
    server.route(chart("BOOM"), Reply.text("Internal Server Error", 500))
    provider = yahoo(tickers=["AAPL", "zzzz", "BOOM", "MSFT"])

    report = provider.fetch_bars(T("2020-08-31"), T("2022-01-31"))

    assert report.bars.groupby("ticker").size().to_dict() == {"AAPL": 49, "MSFT": 252}
    assert report.events.groupby("ticker").size().to_dict() == {"AAPL": 2, "MSFT": 4}
    failures = report.failures.set_index("ticker")
    assert failures.loc["ZZZZ", ["kind", "retryable", "provider"]].tolist() == ["unknown_ticker", False, "yahoo"]
    assert failures.loc["ZZZZ", "reason"] == "ZZZZ: Not Found: No data found, symbol may be delisted"
    assert failures.loc["BOOM", ["kind", "retryable"]].tolist() == ["transient", True]
    assert "HTTP 500" in failures.loc["BOOM", "reason"] and "3 attempts" in failures.loc["BOOM", "reason"]
    assert report.requests == 1 + 1 + 3 + 1 == len(server.hits)
    assert set(report.latency_s) == {"AAPL", "ZZZZ", "BOOM", "MSFT"}


# --- The reliability pieces on their own -------------------------------------------------------------------------


def test_rate_limiter_paces_requests_and_caps_the_day() -> None:
    now, slept, today = [0.0], [], [dt.date(2024, 1, 2)]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(60, requests_per_day=3, clock=lambda: now[0], sleep=sleep, today=lambda: today[0])
    limiter.acquire()
    limiter.acquire()  # one token a second: waits a full second
    now[0] += 0.25
    limiter.acquire()
    assert slept == pytest.approx([1.0, 0.75])
    with pytest.raises(QuotaExceededError, match="daily request cap of 3 spent for 2024-01-02"):
        limiter.acquire()
    assert len(slept) == 2  # a spent day raises at once instead of sleeping
    today[0] = dt.date(2024, 1, 3)
    now[0] += 10
    limiter.acquire()
    assert limiter.used_today == 1 and len(slept) == 2
    limiter.exhaust_today()  # the server said so: refused although the cap is not reached
    with pytest.raises(QuotaExceededError, match="reported today's quota spent"):
        limiter.acquire()
    today[0] = dt.date(2024, 1, 4)
    now[0] += 10
    limiter.acquire()


def test_backoff_is_full_jitter_capped_and_honours_retry_after() -> None:
    policy, rng = RetryPolicy(max_attempts=8, backoff_base_s=0.5, backoff_max_s=4.0), random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 4.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= ceiling and max(delays) > 0.8 * ceiling
    assert policy.delay(1, rng, retry_after=2.5) == 2.5
    assert policy.delay(1, rng, retry_after=120) == 4.0  # a huge Retry-After is capped
