"""The interface every market-data provider resource implements."""

from __future__ import annotations

from abc import abstractmethod

import dagster as dg
import pandas as pd


class MarketDataProvider(dg.ConfigurableResource):
    """A source of daily bars in the canonical schema (see `stockpred_assets.core.schemas.BarSchema`)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Recorded in the `provider` column of every row."""

    @abstractmethod
    def universe(self) -> list[str]:
        """The tickers this provider is configured to fetch."""

    @abstractmethod
    def fetch_bars(self, start: pd.Timestamp, end: pd.Timestamp, tickers: list[str] | None = None) -> pd.DataFrame:
        """Bars for the sessions in [start, end] of `tickers` (default: the universe), one request per ticker."""
