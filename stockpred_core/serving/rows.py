"""One ticker's feature vector as the scorers take it (the service, the stream worker)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stockpred_core.features.catalog import LIBRARY_COLUMNS


def vector_layout(ticker: str, columns, width: int):
    """The columns a vector of `width` values holds in layout `columns`: all of them, or all but the Alpha158-like
    library when the layout ends with it (the stream's vectors while it does not compute the library: a model that
    takes those columns then finds them missing, `ServedModel.index_for`). ValueError for any other width."""
    n = len(LIBRARY_COLUMNS)
    if width == len(columns) or (width == len(columns) - n and list(columns[width:]) == LIBRARY_COLUMNS):
        return columns[:width]
    raise ValueError(f"the vector of {ticker} holds {width} values, its layout {len(columns)} columns")


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
        self.columns = vector_layout(self.ticker, self.columns, len(self.values))

    @property
    def identity(self) -> str:
        """What a cached answer is keyed by: the feature date, and for an intraday row its time too (a new bar makes
        a new answer, so the cache never serves a prediction older than the features)."""
        return self.date if self.as_of is None else f"{self.date}@{self.as_of}"
