"""How providers combine (priority, disagreement threshold) and the market context features need (index, VIX)."""

import dagster as dg
import pandas as pd
from pydantic import Field

DATE_COLUMNS = ("date", "Date", "DATE", "timestamp")
CLOSE_COLUMNS = ("Adj Close", "adj_close", "close", "Close", "CLOSE")


def read_close_series(path: str) -> pd.Series:
    """A date-indexed close series from a CSV/Parquet file (Yahoo's ^GSPC download, Cboe's VIX history, ...)."""
    frame = pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)
    date_col = next((c for c in DATE_COLUMNS if c in frame.columns), None)
    close_col = next((c for c in CLOSE_COLUMNS if c in frame.columns), None)
    if date_col is None or close_col is None:
        raise ValueError(f"{path}: needs a date column {DATE_COLUMNS} and a close column {CLOSE_COLUMNS}")
    dates = pd.to_datetime(frame[date_col], format="mixed").dt.tz_localize(None).dt.normalize()
    series = pd.Series(frame[close_col].to_numpy(dtype=float), index=dates, name=close_col).sort_index()
    return series[~series.index.duplicated(keep="last")]


class MarketDataResource(dg.ConfigurableResource):
    providers: list[str] = Field(default_factory=lambda: ["simulated"], description="Provider names, primary first")
    disagreement_bps: float = Field(default=50.0, description="Close difference that counts as a disagreement")
    index_file: str | None = Field(default=None, description="Market index closes (e.g. ^GSPC); default: equal weight")
    vix_file: str | None = Field(default=None, description="VIX closes; default: a realized-volatility proxy")

    def index_close(self) -> pd.Series | None:
        return read_close_series(self.index_file) if self.index_file else None

    def vix(self) -> pd.Series | None:
        return read_close_series(self.vix_file) if self.vix_file else None
