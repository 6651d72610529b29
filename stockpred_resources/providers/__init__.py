"""Market-data providers: one interface, one resource per source."""

from stockpred_resources.providers.base import MarketDataProvider
from stockpred_resources.providers.simulated import SimulatedProvider

__all__ = ["MarketDataProvider", "SimulatedProvider"]
