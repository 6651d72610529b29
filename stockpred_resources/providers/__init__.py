"""Data providers: one interface per kind (market bars, news, social, filings, macro), one resource per source."""

from stockpred_resources.providers.alphavantage import AlphaVantageProvider
from stockpred_resources.providers.alternative import (
    AltDataProvider,
    FilingsProvider,
    MacroProvider,
    NewsProvider,
    SocialProvider,
)
from stockpred_resources.providers.base import MarketDataProvider
from stockpred_resources.providers.files import FilesProvider
from stockpred_resources.providers.filings import SecEdgarProvider, SecFilesProvider
from stockpred_resources.providers.macro import FredFilesProvider, FredProvider
from stockpred_resources.providers.news import NewsApiProvider, NewsFilesProvider
from stockpred_resources.providers.simulated import SimulatedProvider
from stockpred_resources.providers.social import SocialFilesProvider, TwitterProvider
from stockpred_resources.providers.yahoo import YahooProvider

__all__ = [
    "AlphaVantageProvider",
    "AltDataProvider",
    "FilesProvider",
    "FilingsProvider",
    "FredFilesProvider",
    "FredProvider",
    "MacroProvider",
    "MarketDataProvider",
    "NewsApiProvider",
    "NewsFilesProvider",
    "NewsProvider",
    "SecEdgarProvider",
    "SecFilesProvider",
    "SimulatedProvider",
    "SocialFilesProvider",
    "SocialProvider",
    "TwitterProvider",
    "YahooProvider",
]
