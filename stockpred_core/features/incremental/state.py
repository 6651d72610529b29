"""`IncrementalIndicators`: the standard set's state for a fixed universe of tickers, advanced a batch of bars at a
time; after any sequence of updates its values equal `indicator_set` run on each ticker's bars so far."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stockpred_core.features.incremental.standard import NAMES, WIDTH, advance, replay


class IncrementalIndicators:
    """Per-ticker indicator state as numpy arrays over the universe (row = ticker position): `state` (tickers x
    WIDTH), `count` (complete bars seen per ticker) and `values` (each ticker's latest outputs, NAMES)."""

    names: tuple[str, ...] = tuple(NAMES)

    def __init__(self, tickers: Sequence[str]) -> None:
        self.tickers = pd.Index(list(tickers))
        if not self.tickers.is_unique:
            raise ValueError("the universe lists a ticker twice")
        size = len(self.tickers)
        self.state = np.zeros((size, WIDTH))
        self.count = np.zeros(size, dtype=np.int64)
        self.values = np.full((size, len(self.names)), np.nan)

    @classmethod
    def from_history(
        cls,
        high: pd.DataFrame,
        low: pd.DataFrame,
        close: pd.DataFrame,
        volume: pd.DataFrame,
        tickers: Sequence[str] | None = None,
    ) -> IncrementalIndicators:
        """Warm start from wide frames (rows in time order, one column per ticker; the lake's daily or intraday
        history): every complete row is replayed, so the next update continues exactly where `indicator_set` on these
        frames plus the new bar would. EMA-type indicators remember all rows, so the whole history is needed for
        exact values. The universe is `tickers` (default: the frames' columns), which must hold every column."""
        indicators = cls(close.columns if tickers is None else tickers)
        frames = [f.reindex(index=close.index, columns=close.columns) for f in (high, low, close, volume)]
        replay(
            indicators.state,
            indicators.count,
            indicators.values,
            indicators.positions(close.columns),
            *(np.ascontiguousarray(f.to_numpy(dtype=np.float64)) for f in frames),
        )
        return indicators

    def positions(self, tickers: Sequence[str]) -> np.ndarray:
        """The universe positions of `tickers` (what `update` takes); KeyError for a ticker outside the universe."""
        at = self.tickers.get_indexer(pd.Index(list(tickers)))
        if (at < 0).any():
            missing = [t for t, p in zip(tickers, at, strict=True) if p < 0]
            raise KeyError(f"not in the universe: {missing[:5]}")
        return at.astype(np.int64)

    def update(
        self, rows: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
    ) -> np.ndarray:
        """Advance ticker rows[b] by bar b, in order, and return the new values (len(rows) x len(names)). Tickers not
        listed do not move; a bar with a NaN input is left out (NaN outputs), as the batch leaves out such a row."""
        rows = np.asarray(rows, dtype=np.int64)
        bars = [np.asarray(a, dtype=np.float64) for a in (high, low, close, volume)]
        if rows.ndim != 1 or any(a.shape != rows.shape for a in bars):
            raise ValueError("update takes 1-d arrays of equal length: rows, high, low, close, volume")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.tickers)):
            raise IndexError(f"ticker positions must lie in [0, {len(self.tickers)})")
        out = np.empty((len(rows), len(self.names)))
        advance(self.state, self.count, self.values, rows, *bars, out)
        return out

    def latest(self) -> pd.DataFrame:
        """Each ticker's latest values (tickers x names); NaN in warm-up or before its first bar."""
        return pd.DataFrame(self.values, index=self.tickers, columns=list(self.names))
