"""Bars from files the user already has: one CSV/Parquet file or a folder of them, with a column mapping."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
from pydantic import Field, PrivateAttr

from stockpred_assets.core.schemas import EVENT_COLUMNS, RAW_BAR_COLUMNS, empty_frame
from stockpred_resources.providers.base import (
    BadResponseError,
    MarketDataProvider,
    TickerHistory,
    UnknownTickerError,
)

# Column names found in common exports (Kaggle S&P 500, Yahoo CSV downloads, ...) -> canonical names.
DEFAULT_COLUMNS = {
    "date": "date",
    "Date": "date",
    "timestamp": "date",
    "Name": "ticker",
    "Symbol": "ticker",
    "symbol": "ticker",
    "ticker": "ticker",
    "Ticker": "ticker",
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Volume": "volume",
    "Adj Close": "adj_close",
    "adj_close": "adj_close",
    "Adj_Close": "adj_close",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
}
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


class FilesProvider(MarketDataProvider):
    """A CSV/Parquet file or folder; a file without a ticker column takes its ticker from the file name."""

    path: str = Field(default="", description="A .csv/.csv.gz/.parquet file or a folder of them")
    column_mapping: dict[str, str] = Field(default_factory=dict, description="Source column -> canonical column")
    _table: pd.DataFrame | None = PrivateAttr(default=None)
    _request_id: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        return "files"

    def _files(self) -> list[Path]:
        if not self.path:
            raise BadResponseError("the files provider has no path: set STOCKPRED_FILES_PATH or the resource's path")
        root = Path(self.path).expanduser()
        if root.is_dir():
            return sorted(p for p in root.iterdir() if p.name.endswith(SUFFIXES))
        if root.is_file():
            return [root]
        raise BadResponseError(f"{root} does not exist")

    def _read(self, path: Path) -> pd.DataFrame:
        frame = pd.read_parquet(path) if path.name.endswith((".parquet", ".pq")) else pd.read_csv(path)
        frame = frame.rename(columns={**DEFAULT_COLUMNS, **self.column_mapping})
        if "ticker" not in frame.columns:
            frame["ticker"] = path.name.split(".")[0].upper()
        missing = {"date", "open", "high", "low", "close", "volume"} - set(frame.columns)
        if missing:
            raise BadResponseError(f"{path.name} lacks columns {sorted(missing)} (map them with column_mapping)")
        return frame

    def table(self) -> pd.DataFrame:
        """Every file's rows in the raw schema, read once per resource instance."""
        if self._table is None:
            frame = pd.concat([self._read(p) for p in self._files()], ignore_index=True)
            frame["date"] = pd.to_datetime(frame["date"]).dt.tz_localize(None).dt.normalize()
            if "adj_close" not in frame.columns:
                frame["adj_close"] = frame["close"]
            self._request_id = uuid.uuid4().hex
            frame = frame.assign(
                provider=self.name,
                request_id=self._request_id,
                ingested_at=pd.Timestamp.now(tz="UTC").tz_localize(None),
            )
            extra = ["sector"] if "sector" in frame.columns else []
            self._table = frame[[*RAW_BAR_COLUMNS, *extra]].sort_values(["ticker", "date"], ignore_index=True)
        return self._table

    def sectors(self) -> dict[str, str]:
        """From a `sector` column when the files have one (map e.g. "GICS Sector" to it with column_mapping)."""
        table = self.table()
        if "sector" not in table.columns:
            return {}
        return table.dropna(subset=["sector"]).groupby("ticker")["sector"].last().to_dict()

    def universe(self) -> list[str]:
        return super().universe() or sorted(self.table()["ticker"].unique())

    def fetch_history(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> TickerHistory:
        table = self.table()
        rows = table[table["ticker"] == ticker]
        if rows.empty:
            raise UnknownTickerError(f"{ticker} is not in {self.path}")
        rows = rows[(rows["date"] >= pd.Timestamp(start)) & (rows["date"] <= pd.Timestamp(end))][RAW_BAR_COLUMNS]
        return TickerHistory(ticker=ticker, bars=rows.reset_index(drop=True), events=empty_frame(EVENT_COLUMNS))
