"""Alpha Vantage daily bars (raw, unadjusted for TIME_SERIES_DAILY) from the /query API, one request per ticker."""

from __future__ import annotations

import re
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_core.data.schemas import EVENT_COLUMNS, RAW_BAR_COLUMNS
from stockpred_core.io.http_client import BadResponseError, HttpClient, QuotaExceededError, UnknownTickerError
from stockpred_core.redaction import secrets_in
from stockpred_resources.providers.base import MarketDataProvider, TickerHistory, empty_frame
from stockpred_resources.providers.http_settings import HttpSettings

SERIES_KEY = "Time Series (Daily)"
PRICE_KEYS = {"open": "1. open", "high": "2. high", "low": "3. low", "close": "4. close"}
# Alpha Vantage answers a spent quota with HTTP 200 and a "Note"/"Information" text; these phrases identify it.
QUOTA_WORDS = re.compile(r"rate limit|call frequency|calls per (minute|day)|requests per (minute|day)", re.IGNORECASE)
# "25 requests per day" means the day is spent; the legacy note names both limits and usually meant the minute's.
DAILY_QUOTA = re.compile(r"per day", re.IGNORECASE)
PER_MINUTE = re.compile(r"per minute", re.IGNORECASE)


class AlphaVantageProvider(MarketDataProvider, HttpSettings):
    """TIME_SERIES_DAILY prices are as traded: splits are NOT adjusted here (validation detects and adjusts them)."""

    api_key: str = Field(description="Alpha Vantage API key (pass dg.EnvVar('ALPHAVANTAGE_API_KEY'))")
    base_url: str = Field(default="https://www.alphavantage.co", description="Scheme and host of the API")
    function: Literal["TIME_SERIES_DAILY", "TIME_SERIES_DAILY_ADJUSTED"] = Field(
        default="TIME_SERIES_DAILY", description="TIME_SERIES_DAILY_ADJUSTED adds adjusted close and events (premium)"
    )
    outputsize: Literal["full", "compact"] = Field(default="full", description="full: 20+ years; compact: last 100")
    requests_per_minute: float = Field(default=5.0, gt=0, description="Client-side rate limit (free tier: 5)")
    requests_per_day: int | None = Field(default=25, ge=0, description="Daily request cap (free tier: 25)")

    @property
    def name(self) -> str:
        return "alphavantage"

    def secrets(self) -> list[str]:
        return [self.api_key, *secrets_in(self.base_url)]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_http()

    def fetch_history(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> TickerHistory:
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        client = self.http_client(self.base_url, secrets=self.secrets())
        params = {
            "function": self.function,
            "symbol": ticker,
            "outputsize": self.outputsize,
            "datatype": "json",
            "apikey": self.api_key,
        }
        payload, request_id, attempts = client.get_json("/query", params)
        return self.history_from_reply(
            ticker,
            request_id,
            attempts,
            lambda: _parse_series(_series(ticker, payload, client), ticker, start, end),
            SERIES_KEY,
        )


def _series(ticker: str, payload: Any, client: HttpClient) -> dict[str, dict[str, str]]:
    """The daily series, or the error the HTTP-200 body stands for."""
    if not isinstance(payload, dict):
        raise BadResponseError(f"{ticker}: expected a JSON object, got {type(payload).__name__}")
    if SERIES_KEY in payload:
        return payload[SERIES_KEY]
    if "Error Message" in payload:
        text = _quote(payload["Error Message"], client)
        if text.lower().startswith("invalid api call"):  # what it says for a symbol it does not know
            raise UnknownTickerError(f"{ticker}: Alpha Vantage: {text}")
        raise BadResponseError(f"{ticker}: Alpha Vantage error: {text}")
    for key in ("Note", "Information"):
        if key in payload:
            text = _quote(payload[key], client)
            if QUOTA_WORDS.search(text):
                if DAILY_QUOTA.search(text) and not PER_MINUTE.search(text) and client.limiter is not None:
                    client.limiter.exhaust_today()  # later tickers fail fast instead of asking again
                raise QuotaExceededError(f"{ticker}: Alpha Vantage quota: {text}")
            raise BadResponseError(f"{ticker}: Alpha Vantage {key}: {text}")
    raise BadResponseError(f"{ticker}: no {SERIES_KEY!r} in the body (keys: {sorted(payload)[:5]})")


def _quote(text: Any, client: HttpClient) -> str:
    return client.redact(str(text))  # the rate-limit note quotes the key ("detected your API key as XXXX")


def _parse_series(
    series: dict[str, dict[str, str]], ticker: str, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame.from_dict(series, orient="index")
    if frame.empty:
        return empty_frame(RAW_BAR_COLUMNS), empty_frame(EVENT_COLUMNS)
    adjusted = "5. adjusted close" in frame.columns  # TIME_SERIES_DAILY_ADJUSTED; volume moves to "6. volume"
    columns = {**PRICE_KEYS, "volume": "6. volume" if adjusted else "5. volume"}
    if adjusted:
        columns |= {"adj_close": "5. adjusted close", "dividend": "7. dividend amount", "split": "8. split coefficient"}
    frame = frame[list(columns.values())].rename(columns={v: k for k, v in columns.items()}).astype("float64")
    frame.index = pd.to_datetime(frame.index, format="%Y-%m-%d")
    frame = frame.sort_index().loc[start:end].rename_axis("date").reset_index()
    if not adjusted:
        frame["adj_close"] = frame["close"]  # raw: the split adjustment happens in validation
        return _bars(frame, ticker), empty_frame(EVENT_COLUMNS)
    dividends = frame.loc[frame["dividend"] > 0, ["date", "dividend"]].assign(kind="dividend")
    splits = frame.loc[frame["split"] != 1, ["date", "split"]].assign(kind="split")
    events = pd.concat([dividends.rename(columns={"dividend": "value"}), splits.rename(columns={"split": "value"})])
    events = events.assign(ticker=ticker).sort_values(["date", "kind"]).reset_index(drop=True)
    return _bars(frame, ticker), events


def _bars(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    return frame.assign(ticker=ticker)[["date", "ticker", "open", "high", "low", "close", "adj_close", "volume"]]
