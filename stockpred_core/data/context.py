"""The market context features need beside the bars: the index and VIX closes from the configured files, and the
sectors the providers recorded at ingestion (the `features` asset and the stream worker's warm start read it alike)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from stockpred_core.features.batch import MarketContext
from stockpred_core.io.lake import Lake

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


def market_context(
    lake: Lake, providers: Sequence[str], index_file: str | None = None, vix_file: str | None = None
) -> MarketContext:
    """Index and VIX from the files, sectors from the lake's `reference/sectors_<provider>` tables (the primary
    provider's mapping wins)."""
    sectors: dict[str, str] = {}
    for name in reversed(providers):
        try:
            sectors.update(lake.read_table("reference", f"sectors_{name}").set_index("ticker")["sector"].to_dict())
        except FileNotFoundError:
            continue
    return MarketContext(
        index_close=read_close_series(index_file) if index_file else None,
        vix=read_close_series(vix_file) if vix_file else None,
        sectors=sectors,
    )
