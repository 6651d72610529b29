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

    def __post_init__(self) -> None:
        """A vector shorter than its version's layout holds the layout's first columns: the stream leaves out the
        Alpha158-like library, the layout's last columns, while it does not compute it (a model that takes them
        then finds them missing: `ServedModel.index_for`)."""
        if len(self.values) < len(self.columns):
            self.columns = self.columns[: len(self.values)]
        elif len(self.values) > len(self.columns):
            raise ValueError(
                f"the vector of {self.ticker} holds {len(self.values)} values, its layout {len(self.columns)} columns"
            )

    @property
    def identity(self) -> str:
        """What a cached answer is keyed by: the feature date, and for an intraday row its time too (a new bar makes
        a new answer, so the cache never serves a prediction older than the features)."""
        return self.date if self.as_of is None else f"{self.date}@{self.as_of}"
