"""The simulated market as a provider: offline, deterministic per seed."""

from __future__ import annotations

import time
import uuid

import pandas as pd
from pydantic import Field

from stockpred_core.data.simulation import Regime, simulate_market, simulated_tickers, ticker_sector
from stockpred_core.io.http_client import UnknownTickerError
from stockpred_resources.providers.base import FetchReport, MarketDataProvider, TickerHistory


class SimulatedProvider(MarketDataProvider):
    """Bars from `stockpred_core.data.simulation`: identical for the same seed whatever range is asked.

    The universe is the first `universe_size` simulated tickers, or the `tickers` list when one is given.
    """

    seed: int = Field(default=7, description="Seed of the simulated market")
    universe_size: int = Field(default=50, ge=1, le=99_999, description="Number of simulated tickers")
    regime_start: str | None = Field(default=None, description="Switch on a bear regime from this date (YYYY-MM-DD)")
    regime_vol_multiplier: float = 2.0
    regime_drift: float = -0.0015

    @property
    def name(self) -> str:
        return "simulated"

    def universe(self) -> list[str]:
        return super().universe() or simulated_tickers(self.universe_size)

    def sectors(self) -> dict[str, str]:
        known = set(simulated_tickers(self.universe_size))
        return {t: ticker_sector(t) for t in self.universe() if t in known}

    def _regime(self) -> Regime | None:
        if self.regime_start is None:
            return None
        return Regime(self.regime_start, self.regime_vol_multiplier, self.regime_drift)

    def _simulate(
        self, start: pd.Timestamp, end: pd.Timestamp, tickers: list[str]
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        known = set(simulated_tickers(self.universe_size))
        unknown = sorted(set(tickers) - known)
        if unknown:
            raise UnknownTickerError(f"not in the simulated universe of {self.universe_size}: {', '.join(unknown[:5])}")
        bars, events = simulate_market(self.seed, self.universe_size, start, end, tickers, self._regime())
        return bars.assign(request_id=uuid.uuid4().hex), events

    def fetch_history(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> TickerHistory:
        bars, events = self._simulate(start, end, [ticker])
        return TickerHistory(ticker=ticker, bars=bars, events=events)

    def fetch_bars(self, start: pd.Timestamp, end: pd.Timestamp, tickers: list[str] | None = None) -> FetchReport:
        """All tickers in one vectorized pass (the market is simulated once, not once per ticker)."""
        tickers = self.universe() if tickers is None else tickers
        known = set(simulated_tickers(self.universe_size))
        good, bad = [t for t in tickers if t in known], [t for t in tickers if t not in known]
        began = time.monotonic()
        bars, events = self._simulate(start, end, good) if good else (None, None)
        elapsed = time.monotonic() - began
        histories = [TickerHistory(ticker="*", bars=bars, events=events, requests=1)] if good else []
        reason = f"not in the simulated universe of {self.universe_size}"
        failures = [self.failure_record(t, UnknownTickerError(reason, requests=0)) for t in bad]
        return FetchReport.combine(histories, failures, {t: elapsed / max(len(good), 1) for t in good})
