"""Where intraday bars come from, behind one interface (`BarSource`): replays of real recorded bars (Lean zips, Alpha
Vantage captures), simulated bars consistent with the simulated daily market, and Yahoo's live 1m chart API."""

from stream.sources.alphavantage import AlphaVantageReplay
from stream.sources.base import BarSource, ReplaySource, paced
from stream.sources.lean import LeanReplay
from stream.sources.simulated import SimulatedReplay
from stream.sources.yahoo_live import YahooLive

__all__ = ["AlphaVantageReplay", "BarSource", "LeanReplay", "ReplaySource", "SimulatedReplay", "YahooLive", "paced"]
