"""The interface every market-data provider resource implements (the errors providers raise live beside the shared
HTTP client, in `stockpred_core.io.http_client`).

A provider fetches ONE ticker's whole date range per request (`fetch_history`); `fetch_bars` fetches many tickers
and isolates failures, so one bad ticker never fails a partition: it is reported in `FetchReport.failures`.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_core.data.schemas import (
    EVENT_COLUMNS,
    FAILURE_COLUMNS,
    RAW_BAR_COLUMNS,
    REJECT_COLUMNS,
    empty_frame,
)
from stockpred_core.io.http_client import BadResponseError, ProviderError
from stockpred_core.redaction import redact


@dataclass
class TickerHistory:
    """What one request for one ticker returned: raw bars (RAW_BAR_COLUMNS) and corporate actions (EVENT_COLUMNS)."""

    ticker: str
    bars: pd.DataFrame
    events: pd.DataFrame = field(default_factory=lambda: empty_frame(EVENT_COLUMNS))
    requests: int = 1


@dataclass
class FetchReport:
    """The result of fetching many tickers: what arrived, what failed and what it cost."""

    bars: pd.DataFrame
    events: pd.DataFrame
    failures: pd.DataFrame  # FAILURE_COLUMNS
    requests: int = 0
    latency_s: dict[str, float] = field(default_factory=dict)  # per ticker

    @staticmethod
    def combine(histories: list[TickerHistory], failures: list[dict], latency: dict[str, float]) -> FetchReport:
        bars = [h.bars for h in histories if len(h.bars)]
        events = [h.events for h in histories if len(h.events)]
        return FetchReport(
            bars=pd.concat(bars, ignore_index=True) if bars else empty_frame(RAW_BAR_COLUMNS),
            events=pd.concat(events, ignore_index=True) if events else empty_frame(EVENT_COLUMNS),
            failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS) if failures else empty_frame(FAILURE_COLUMNS),
            requests=sum(h.requests for h in histories) + sum(int(f.get("requests", 1)) for f in failures),
            latency_s=latency,
        )


def configured_symbols(tickers: list[str], universe_file: str | None) -> list[str]:
    """`tickers` plus the lines of `universe_file` (# comments), upper-cased, de-duplicated, in order."""
    symbols = list(tickers)
    if universe_file:
        lines = Path(universe_file).read_text().splitlines()
        symbols += [line.split("#", 1)[0].strip() for line in lines]
    return list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))


class MarketDataProvider(dg.ConfigurableResource):
    """A source of daily bars in the canonical schema (see `stockpred_core.data.schemas.BarSchema`)."""

    tickers: list[str] = Field(default_factory=list, description="The universe as a list of symbols")
    universe_file: str | None = Field(default=None, description="A text file with one symbol per line (# comments)")

    @property
    @abstractmethod
    def name(self) -> str:
        """Recorded in the `provider` column of every row."""

    def universe(self) -> list[str]:
        """The configured tickers: the list plus the file's lines, upper-cased, de-duplicated, in order."""
        return configured_symbols(self.tickers, self.universe_file)

    def set_window(self, start: pd.Timestamp, end: pd.Timestamp) -> None:
        """The sessions this run asks for, before anything else is asked: a provider that can read a range cheaply
        (the files provider's Parquet) reads only that; others need nothing."""

    def secrets(self) -> list[str]:
        """Configured values that must never appear in a message (API keys, URL passwords)."""
        return []

    def sectors(self) -> dict[str, str]:
        """Ticker -> sector where the provider knows it (used for sector-relative features)."""
        return {}

    def rejects(self) -> pd.DataFrame:
        """Source rows the raw layer cannot hold (REJECT_COLUMNS: raw text and reason); none for API providers."""
        return empty_frame(REJECT_COLUMNS)

    def notes(self) -> list[str]:
        """Warnings about the source as a whole (e.g. an empty file), logged by the ingest step."""
        return []

    def rows_loaded(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> int | None:
        """Rows of a source read in full (files) that loaded, dated in [start, end] when given; None for sources
        counted per fetch (APIs)."""
        return None

    @abstractmethod
    def fetch_history(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> TickerHistory:
        """Bars and events of one ticker for the sessions in [start, end], in one request; raises ProviderError."""

    def history_from_reply(
        self,
        ticker: str,
        request_id: str,
        requests: int,
        parse: Callable[[], tuple[pd.DataFrame, pd.DataFrame]],
        what: str,
    ) -> TickerHistory:
        """Parse one reply into a TickerHistory stamped with provider, fetch time and request id; a reply that is not
        shaped as documented becomes a BadResponseError, and every error carries the request count and id."""
        try:
            bars, events = parse()
        except ProviderError as exc:
            exc.requests, exc.request_id = requests, request_id
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            message = f"{ticker}: {what} not shaped as documented ({type(exc).__name__}: {exc})"
            raise BadResponseError(message, requests=requests, request_id=request_id) from None
        bars["provider"] = events["provider"] = self.name
        bars["ingested_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        bars["request_id"] = request_id
        return TickerHistory(ticker=ticker, bars=bars[RAW_BAR_COLUMNS], events=events[EVENT_COLUMNS], requests=requests)

    def failure_record(self, ticker: str, error: ProviderError) -> dict:
        """The dead-letter row for a ticker that could not be fetched, its reason stripped of the provider's secrets."""
        return {
            "ticker": ticker,
            "provider": self.name,
            "kind": error.kind,
            "reason": redact(str(error), self.secrets()),
            "retryable": error.retryable,
            "attempted_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            "requests": error.requests,
            "request_id": error.request_id,
        }

    def fetch_bars(self, start: pd.Timestamp, end: pd.Timestamp, tickers: list[str] | None = None) -> FetchReport:
        """Fetch each ticker (default: the universe); a ticker that fails is reported, never raised."""
        histories, failures, latency = [], [], {}
        for ticker in tickers if tickers is not None else self.universe():
            began = time.monotonic()
            try:
                histories.append(self.fetch_history(ticker, start, end))
            except ProviderError as exc:
                failures.append(self.failure_record(ticker, exc))
            latency[ticker] = time.monotonic() - began
        return FetchReport.combine(histories, failures, latency)
