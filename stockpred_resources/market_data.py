"""How providers combine (priority, disagreement threshold) and the market context features need (index, VIX)."""

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_core.data.context import read_close_series


class MarketDataResource(dg.ConfigurableResource):
    providers: list[str] = Field(default_factory=lambda: ["simulated"], description="Provider names, primary first")
    disagreement_bps: float = Field(default=50.0, description="Close difference that counts as a disagreement")
    index_file: str | None = Field(default=None, description="Market index closes (e.g. ^GSPC); default: equal weight")
    vix_file: str | None = Field(default=None, description="VIX closes; default: a realized-volatility proxy")

    def index_close(self) -> pd.Series | None:
        return read_close_series(self.index_file) if self.index_file else None

    def vix(self) -> pd.Series | None:
        return read_close_series(self.vix_file) if self.vix_file else None
