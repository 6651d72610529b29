"""Market-data providers: one interface, one resource per source."""

from stockpred_resources.providers.alphavantage import AlphaVantageProvider
from stockpred_resources.providers.base import MarketDataProvider
from stockpred_resources.providers.files import FilesProvider
from stockpred_resources.providers.simulated import SimulatedProvider
from stockpred_resources.providers.yahoo import YahooProvider

__all__ = ["AlphaVantageProvider", "FilesProvider", "MarketDataProvider", "SimulatedProvider", "YahooProvider"]
