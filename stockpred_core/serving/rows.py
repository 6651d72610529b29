"""One ticker's feature vector as the scorers take it (the service, the stream worker)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class FeatureRow:
    ticker: str
    date: str  # YYYY-MM-DD
    close: float
    feature_set_version: str
    values: np.ndarray  # float64, in `columns` order
    columns: tuple[str, ...]
    source: str  # "redis" | "lake" | "stream"
    as_of: str | None = None  # intraday rows: ISO UTC time the newest bar behind them ended; None for a close's

    @property
    def identity(self) -> str:
        """What a cached answer is keyed by: the feature date, and for an intraday row its time too (a new bar makes
        a new answer, so the cache never serves a prediction older than the features)."""
        return self.date if self.as_of is None else f"{self.date}@{self.as_of}"
