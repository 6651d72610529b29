"""The Alpha Vantage provider against a real local HTTP server replaying recorded responses: daily and adjusted series,
the error payloads it answers with HTTP 200, and the free tier's daily cap."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from provider_recordings import API_KEY, MakeAlphaVantage, T
from support.recorded_server import RecordedServer, Reply

from stockpred_core.data.schemas import EVENT_COLUMNS, RAW_BAR_COLUMNS
from stockpred_core.io.http_client import BadResponseError, QuotaExceededError, UnknownTickerError
from stockpred_resources.providers.alphavantage import AlphaVantageProvider

AV_AAPL_FULL = "TickerTrace_vcr_2023/TIME_SERIES_DAILY_AAPL_full_2023-11-10.body.json"
AV_IBM_COMPACT = "TickerTrace_vcr_2023/TIME_SERIES_DAILY_IBM_compact_2023-11-10.body.json"
AV_MSFT_ADJUSTED = "kresli_stock-point_2019/stock-time-series-daily-adjusted.body.json"


def av_body(providers_dir: Path, name: str) -> str:
    return (providers_dir / "alphavantage" / name).read_text()


def day(frame: pd.DataFrame, date: str) -> pd.Series:
    return frame.set_index("date").loc[T(date)]


def test_alphavantage_full_daily_history_is_raw(
    server: RecordedServer, alphavantage: MakeAlphaVantage, providers_dir: Path
) -> None:
    server.route("/query", Reply.json(av_body(providers_dir, AV_AAPL_FULL)), symbol="AAPL")
    history = alphavantage().fetch_history("AAPL", T("1999-01-01"), T("2023-11-10"))
    bars = history.bars

    assert list(bars.columns) == RAW_BAR_COLUMNS and history.events.empty and history.requests == 1
    assert len(bars) == 6047 and bars["date"].is_monotonic_increasing and bars["date"].is_unique
    assert (bars["date"].iloc[0], bars["date"].iloc[-1]) == (T("1999-11-01"), T("2023-11-10"))
    first, last = bars.iloc[0], bars.iloc[-1]
    assert (first.open, first.high, first.low, first.close, first.volume) == (80.0, 80.69, 77.37, 77.62, 2487300.0)
    assert (last.open, last.high, last.low, last.close, last.volume) == (183.97, 186.565, 183.53, 186.4, 66177922.0)
    assert (bars["adj_close"] == bars["close"]).all() and (bars["ticker"] == "AAPL").all()
    assert (bars["provider"] == "alphavantage").all() and bars["ingested_at"].dt.tz is None
    # Unadjusted: each split day's close falls by about the split ratio against the previous session's close.
    closes = bars.set_index("date")["close"]
    jumps = closes.shift(1) / closes
    for split_day, ratio, expected_jump in [
        ("2000-06-21", 2, 1.8201),
        ("2005-02-28", 2, 1.9837),
        ("2014-06-09", 7, 6.8898),
        ("2020-08-31", 4, 3.8688),
    ]:
        assert jumps[T(split_day)] == pytest.approx(expected_jump, abs=1e-4)
        assert abs(jumps[T(split_day)] / ratio - 1) < 0.1
    assert (closes[T("2020-08-28")], closes[T("2020-08-31")]) == (499.23, 129.04)
    # The real -52% crash on 2000-09-29 looks like a 2:1 split by price alone; no event says otherwise here.
    assert jumps[T("2000-09-29")] == pytest.approx(2.0777, abs=1e-4)
    assert sorted(jumps[jumps > 1.5].index.strftime("%Y-%m-%d")) == [
        "2000-06-21",
        "2000-09-29",
        "2005-02-28",
        "2014-06-09",
        "2020-08-31",
    ]

    [hit] = server.hits
    assert hit.query == {
        "function": "TIME_SERIES_DAILY",
        "symbol": "AAPL",
        "outputsize": "full",
        "datatype": "json",
        "apikey": API_KEY,
    }
    assert len(hit.headers["x-request-id"]) == 32 and (bars["request_id"] == hit.headers["x-request-id"]).all()


def test_alphavantage_keeps_only_the_requested_range(
    server: RecordedServer, alphavantage: MakeAlphaVantage, providers_dir: Path
) -> None:
    server.route("/query", Reply.json(av_body(providers_dir, AV_AAPL_FULL)))
    bars = alphavantage().fetch_history("AAPL", T("2020-08-29"), T("2020-09-07")).bars
    assert bars["date"].dt.strftime("%m-%d").tolist() == ["08-31", "09-01", "09-02", "09-03", "09-04"]


def test_alphavantage_daily_adjusted(
    server: RecordedServer, alphavantage: MakeAlphaVantage, providers_dir: Path
) -> None:
    """adj_close from "5. adjusted close", volume from "6. volume"; a "7. dividend amount" becomes an event."""
    server.route("/query", Reply.json(av_body(providers_dir, AV_MSFT_ADJUSTED)))
    provider = alphavantage(function="TIME_SERIES_DAILY_ADJUSTED", outputsize="compact")
    history = provider.fetch_history("MSFT", T("2019-01-01"), T("2019-08-02"))
    bars = history.bars

    assert len(bars) == 100 and (bars["date"].iloc[0], bars["date"].iloc[-1]) == (T("2019-03-13"), T("2019-08-02"))
    before = day(bars, "2019-05-14")
    assert (before.close, before.adj_close, before.volume) == (124.73, 124.2764, 25266294.0)
    assert (day(bars, "2019-08-02").volume, day(bars, "2019-08-02").adj_close) == (30781971.0, 136.9)
    assert list(history.events.columns) == EVENT_COLUMNS
    assert history.events.to_dict("records") == [
        {"date": T("2019-05-15"), "ticker": "MSFT", "kind": "dividend", "value": 0.46, "provider": "alphavantage"}
    ]
    assert server.hits[0].query["function"] == "TIME_SERIES_DAILY_ADJUSTED"
    assert server.hits[0].query["outputsize"] == "compact"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("error_invalid_api_call_TIME_SERIES_DAILY.json", UnknownTickerError),
        ("error_invalid_api_call_TIME_SERIES_DAILY_ADJUSTED.json", UnknownTickerError),
        ("rate_limit_information_25day.json", QuotaExceededError),
        ("rate_limit_information_25day_keyed.json", QuotaExceededError),
        ("rate_limit_note_5min_500day_legacy.json", QuotaExceededError),
        ("premium_endpoint_information.json", BadResponseError),
        ("demo_key_information.json", BadResponseError),
        ("demo_key_information_2024plus.json", BadResponseError),
        ("error_apikey_missing.json", BadResponseError),
    ],
)
def test_alphavantage_error_payloads_map_to_error_classes(
    server: RecordedServer, alphavantage: MakeAlphaVantage, providers_dir: Path, payload: str, error: type
) -> None:
    body = av_body(providers_dir, f"error_payloads_verbatim/{payload}").replace("XXXXXXXXXXXXXXXX", API_KEY)
    server.route("/query", Reply.json(body))
    with pytest.raises(error) as caught:
        alphavantage().fetch_history("ZZZZ", T("2023-01-02"), T("2023-01-31"))
    assert type(caught.value) is error
    text = next(iter(json.loads(body).values()))
    assert caught.value.requests == 1 and len(server.hits) == 1  # answered with HTTP 200: never retried
    assert API_KEY not in str(caught.value)
    assert text.replace(API_KEY, "***")[:60] in str(caught.value)


def test_alphavantage_daily_cap_raises_without_a_request(
    server: RecordedServer, alphavantage: MakeAlphaVantage, providers_dir: Path
) -> None:
    server.route("/query", Reply.json(av_body(providers_dir, AV_IBM_COMPACT)))
    provider = alphavantage(requests_per_day=2)
    for _ in range(2):
        assert len(provider.fetch_history("IBM", T("2023-06-22"), T("2023-11-10")).bars) == 100
    with pytest.raises(QuotaExceededError, match="daily request cap of 2") as caught:
        provider.fetch_history("IBM", T("2023-06-22"), T("2023-11-10"))
    assert caught.value.requests == 0 and len(server.hits) == 2


@pytest.mark.parametrize(
    ("payload", "hits_after_second_fetch"),
    [("rate_limit_information_25day.json", 1), ("rate_limit_note_5min_500day_legacy.json", 2)],
)
def test_alphavantage_spent_day_fails_fast(
    server: RecordedServer,
    alphavantage: MakeAlphaVantage,
    providers_dir: Path,
    payload: str,
    hits_after_second_fetch: int,
) -> None:
    """After "25 requests per day" the day is over: later tickers fail without a request (not so per minute)."""
    server.route("/query", Reply.json(av_body(providers_dir, f"error_payloads_verbatim/{payload}")))
    provider = alphavantage()
    with pytest.raises(QuotaExceededError):
        provider.fetch_history("AAPL", T("2023-01-02"), T("2023-01-31"))
    with pytest.raises(QuotaExceededError) as caught:
        provider.fetch_history("MSFT", T("2023-01-02"), T("2023-01-31"))
    assert len(server.hits) == hits_after_second_fetch and caught.value.requests == hits_after_second_fetch - 1


def test_alphavantage_defaults_respect_the_free_tier() -> None:
    provider = AlphaVantageProvider(api_key="k")
    assert (provider.requests_per_minute, provider.requests_per_day) == (5.0, 25)
    assert (provider.function, provider.outputsize, provider.base_url) == (
        "TIME_SERIES_DAILY",
        "full",
        "https://www.alphavantage.co",
    )
