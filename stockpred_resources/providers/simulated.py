"""The simulated market as a provider: offline, deterministic per seed."""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from stockpred_assets.core.simulation import simulate_bars, simulated_tickers
from stockpred_resources.providers.base import MarketDataProvider


class SimulatedProvider(MarketDataProvider):
    """Bars from `stockpred_assets.core.simulation`: identical for the same seed whatever range is asked."""

    seed: int = Field(default=7, description="Seed of the simulated market")
    universe_size: int = Field(default=50, ge=1, le=99_999, description="Number of simulated tickers")

    @property
    def name(self) -> str:
        return "simulated"

    def universe(self) -> list[str]:
        return simulated_tickers(self.universe_size)

    def fetch_bars(self, start: pd.Timestamp, end: pd.Timestamp, tickers: list[str] | None = None) -> pd.DataFrame:
        unknown = sorted(set(tickers or []) - set(self.universe()))
        if unknown:
            raise ValueError(f"tickers not in the simulated universe of {self.universe_size}: {unknown[:5]}")
        return simulate_bars(self.seed, self.universe_size, start, end, tickers)
