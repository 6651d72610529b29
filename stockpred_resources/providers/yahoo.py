"""Yahoo Finance daily bars and corporate actions from the v8 chart API, one request per ticker."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_core.data.schemas import EVENT_COLUMNS
from stockpred_core.io.http_client import BadResponseError, HttpStatusError, UnknownTickerError
from stockpred_core.redaction import secrets_in
from stockpred_resources.providers.base import MarketDataProvider, TickerHistory, empty_frame
from stockpred_resources.providers.http_settings import HttpSettings

OHLC = ["open", "high", "low", "close"]
# Yahoo refuses requests without a browser-like user agent.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) stockpred/0.1"


class YahooProvider(MarketDataProvider, HttpSettings):
    """Raw bars, as traded: Yahoo serves prices split-adjusted as of the day of the request, so each request runs up
    to now and the splits it reports are undone (prices times, volumes and dividends divided by, every later split).
    `adj_close` stays Yahoo's split- and dividend-adjusted close."""

    base_url: str = Field(default="https://query2.finance.yahoo.com", description="Scheme and host of the chart API")

    @property
    def name(self) -> str:
        return "yahoo"

    def secrets(self) -> list[str]:
        return secrets_in(self.base_url)  # e.g. a gateway's password in the URL

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_http()

    def fetch_history(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> TickerHistory:
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        client = self.http_client(self.base_url, headers={"User-Agent": USER_AGENT}, secrets=self.secrets())
        # A day of slack either side: sessions are stamped at the exchange's open, which is not midnight UTC.
        params = {
            "period1": int((start - pd.Timedelta(days=1)).tz_localize("UTC").timestamp()),
            # Up to now whatever `end` is: every split Yahoo has applied must be in the answer to be undone.
            "period2": int(max(end + pd.Timedelta(days=2), _today()).tz_localize("UTC").timestamp()),
            "interval": "1d",
            "events": "div,splits",
            "includeAdjustedClose": "true",
        }
        try:
            payload, request_id, attempts = client.get_json(f"/v8/finance/chart/{ticker}", params)
        except HttpStatusError as exc:
            raise _status_error(ticker, start, end, exc) from None
        return self.history_from_reply(
            ticker,
            request_id,
            attempts,
            lambda: _parse_result(_chart_result(ticker, payload), ticker, start, end),
            "chart result",
        )


def _today() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").normalize().tz_localize(None)


def _status_error(ticker: str, start: pd.Timestamp, end: pd.Timestamp, exc: HttpStatusError) -> Exception:
    """404 (no such symbol) and 400 (no data for the range) mean the ticker cannot be fetched; others are bad."""
    if exc.status == 404:
        error: Exception = UnknownTickerError(f"{ticker}: {_chart_error_description(exc.text) or exc.text}")
    elif exc.status == 400:
        error = UnknownTickerError(f"{ticker}: no data for {start.date()}..{end.date()}: {exc.text}")
    else:
        return exc
    error.requests, error.request_id = exc.requests, exc.request_id
    return error


def _chart_error_description(text: str) -> str | None:
    try:
        error = json.loads(text)["chart"]["error"]
        return f"{error['code']}: {error['description']}"
    except (ValueError, KeyError, TypeError):
        return None


def _chart_result(ticker: str, payload: Any) -> dict:
    chart = payload["chart"]
    error = chart.get("error")
    if error:
        message = f"{ticker}: {error.get('code')}: {error.get('description')}"
        raise UnknownTickerError(message) if error.get("code") == "Not Found" else BadResponseError(message)
    if not chart.get("result"):
        raise BadResponseError(f"{ticker}: chart has neither a result nor an error")
    return chart["result"][0]


def _parse_result(result: dict, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, ...]:
    tz = result["meta"].get("exchangeTimezoneName") or "UTC"
    timestamps = result.get("timestamp") or []  # absent when the range holds no session (a weekend)
    indicators = result.get("indicators") or {}
    quote = (indicators.get("quote") or [{}])[0] if timestamps else {}
    adjclose = (indicators.get("adjclose") or [{}])[0].get("adjclose") if timestamps else None
    n = len(timestamps)
    bars = pd.DataFrame(
        {
            "date": _session_dates(timestamps, tz),
            "ticker": ticker,
            **{
                column: pd.to_numeric(pd.Series(quote.get(column, [None] * n), dtype="object"), errors="coerce")
                for column in [*OHLC, "volume"]
            },
        }
    )
    bars["adj_close"] = pd.to_numeric(pd.Series(adjclose or [None] * n, dtype="object"), errors="coerce")
    bars["adj_close"] = bars["adj_close"].fillna(bars["close"])
    bars = bars.dropna(subset=OHLC, how="all")  # Yahoo pads non-sessions with all-null rows
    events = _events(result, ticker, tz)
    bars, events = _undo_splits(bars, events)
    bars = bars[(bars["date"] >= start) & (bars["date"] <= end)]
    events = events[(events["date"] >= start) & (events["date"] <= end)].reset_index(drop=True)
    # During a session Yahoo appends a live bar, which can repeat the last date: the later one is newer.
    bars = bars.drop_duplicates("date", keep="last").sort_values("date").reset_index(drop=True)
    return bars.astype({c: "float64" for c in [*OHLC, "adj_close", "volume"]}), events


def _session_dates(timestamps: list[int], tz: str) -> pd.Series:
    stamps = pd.to_datetime(pd.Series(timestamps, dtype="int64"), unit="s", utc=True)
    return stamps.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def _undo_splits(bars: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prices as traded: a bar dated before a split is scaled back by the split's ratio (volume the other way)."""
    splits = events[events["kind"] == "split"]
    if splits.empty:
        return bars, events
    bars, events = bars.copy(), events.copy()
    bar_factor = pd.Series(1.0, index=bars.index)
    event_factor = pd.Series(1.0, index=events.index)
    for split in splits.itertuples():
        bar_factor[bars["date"] < split.date] *= split.value
        event_factor[(events["date"] < split.date) & (events["kind"] == "dividend")] *= split.value
    bars[OHLC] = bars[OHLC].mul(bar_factor, axis=0)
    bars["volume"] = (bars["volume"] / bar_factor).round()
    events["value"] = events["value"] * event_factor
    return bars, events


def _events(result: dict, ticker: str, tz: str) -> pd.DataFrame:
    raw = result.get("events") or {}
    rows = [(e["date"], "split", e["numerator"] / e["denominator"]) for e in (raw.get("splits") or {}).values()]
    rows += [(e["date"], "dividend", float(e["amount"])) for e in (raw.get("dividends") or {}).values()]
    if not rows:
        return empty_frame(EVENT_COLUMNS)
    stamps, kinds, values = zip(*rows, strict=True)
    events = pd.DataFrame({"date": _session_dates(list(stamps), tz), "ticker": ticker, "kind": kinds, "value": values})
    return events.sort_values(["date", "kind"]).reset_index(drop=True)
