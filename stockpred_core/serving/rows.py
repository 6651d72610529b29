"""One ticker's feature vector as the scorers take it (the service, the stream worker)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stockpred_core.features.catalog import LIBRARY_COLUMNS


def library_short(columns) -> int | None:
    """The length of a vector of layout `columns` without the library, when the layout ends with it (else None)."""
    n = len(LIBRARY_COLUMNS)
    return len(columns) - n if len(columns) >= n and list(columns[-n:]) == LIBRARY_COLUMNS else None


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
        """A vector may leave out the Alpha158-like library, the layout's last columns: the stream's vectors while
        it does not compute it (a model that takes them then finds them missing: `ServedModel.index_for`). Any
        other length is refused."""
        if len(self.values) != len(self.columns):
            if len(self.values) != library_short(self.columns):
                raise ValueError(
                    f"the vector of {self.ticker} holds {len(self.values)} values, its layout {len(self.columns)} "
                    "columns"
                )
            self.columns = self.columns[: len(self.values)]

    @property
    def identity(self) -> str:
        """What a cached answer is keyed by: the feature date, and for an intraday row its time too (a new bar makes
        a new answer, so the cache never serves a prediction older than the features)."""
        return self.date if self.as_of is None else f"{self.date}@{self.as_of}"
