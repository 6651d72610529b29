"""Feature vectors for the service: rows from the Redis online store, or from the lake through DuckDB."""

from __future__ import annotations

import logging
import threading

import duckdb
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.io.lake import PART_FILE, Lake
from stockpred_core.io.online_store import TEXT_FIELDS, Snapshot
from stockpred_core.redaction import redact, redact_url
from stockpred_core.serving.rows import FeatureRow

logger = logging.getLogger("bentoml.stockpred")
LAKE_TABLE = ("serving", "online_features")


def snapshot_rows(snapshot: Snapshot | None) -> dict[str, FeatureRow]:
    """ticker -> row of the online store's packed snapshot (batches read it instead of one hash per ticker)."""
    if snapshot is None:
        return {}
    close_at = snapshot.columns.index("close") if "close" in snapshot.columns else None
    closes = snapshot.matrix[:, close_at].tolist() if close_at is not None else [float("nan")] * len(snapshot.tickers)
    return {
        ticker: FeatureRow(ticker, date, close, version, values, snapshot.columns, "redis")
        for ticker, date, close, version, values in zip(
            snapshot.tickers, snapshot.dates, closes, snapshot.versions, snapshot.matrix, strict=True
        )
    }


class LakeFeatures:
    """The `serving/online_features` table read with DuckDB, held in memory and re-read when its file changes."""

    def __init__(self, lake_url: str, storage_options: dict | None = None) -> None:
        self.lake = Lake(lake_url, storage_options)
        self.path = f"{self.lake.table_path(*LAKE_TABLE)}/current/{PART_FILE}"
        self.url = f"{self.lake.table_url(*LAKE_TABLE)}/current/{PART_FILE}"
        self.rows: dict[str, FeatureRow] = {}
        self.latest_date: str | None = None
        self.feature_set_versions: set[str] = set()
        self.error: str | None = None
        self._stamp: object = None
        self._lock = threading.Lock()

    def _file_stamp(self) -> object:
        info = self.lake.fs.info(self.path)
        return info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("size")

    def refresh_changed(self) -> bool:
        """Re-read the table when it changed; True when it was re-read."""
        stamp = self._stamp
        self.refresh()
        return self._stamp != stamp

    def refresh(self) -> bool:
        """Re-read the table when it changed; True when rows are loaded."""
        with self._lock:
            try:
                stamp = self._file_stamp()
            except FileNotFoundError:
                self.error = f"lake table {'/'.join(LAKE_TABLE)} has not been written yet"
                return bool(self.rows)
            if stamp == self._stamp and self.rows:
                return True
            try:
                rows = self._index(self._read())
            except Exception as exc:  # a half-visible object store write, a permissions problem: keep the old rows
                self.error = f"cannot read the lake table {'/'.join(LAKE_TABLE)} (see the service log)"
                logger.warning("cannot read %s: %s", redact_url(self.url), redact(str(exc)))
                return bool(self.rows)
            self.rows, self._stamp, self.error = rows, stamp, None
            dates = [r.date for r in self.rows.values()]
            self.latest_date = max(dates) if dates else None
            self.feature_set_versions = {r.feature_set_version for r in self.rows.values()}
            return bool(self.rows)

    def _read(self) -> pd.DataFrame:
        con = duckdb.connect()
        try:
            if self.lake.fs.protocol not in ("file", ("file", "local")):
                con.register_filesystem(self.lake.fs)
            return con.execute("SELECT * FROM read_parquet(?)", [self.url]).df()
        finally:
            con.close()

    @staticmethod
    def _index(frame: pd.DataFrame) -> dict[str, FeatureRow]:
        if frame.empty:
            return {}
        columns = tuple(c for c in frame.columns if c not in TEXT_FIELDS and pd.api.types.is_numeric_dtype(frame[c]))
        matrix = frame[list(columns)].to_numpy(dtype=float)
        dates = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d").tolist()
        versions = (
            frame["feature_set_version"].astype(str).tolist() if "feature_set_version" in frame else [""] * len(frame)
        )
        close_at = columns.index("close")
        rows = {}
        for i, ticker in enumerate(frame["ticker"].astype(str)):
            values = matrix[i]
            rows[ticker] = FeatureRow(ticker, dates[i], float(values[close_at]), versions[i], values, columns, "lake")
        return rows

    def get(self, ticker: str) -> FeatureRow | None:
        return self.rows.get(ticker)


class StalenessClock:
    """How many sessions have closed since a feature date (memoized per date and hour)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], int | None] = {}

    def age(self, date: str) -> int | None:
        now = pd.Timestamp.now(tz="America/New_York")
        hour = now.strftime("%Y-%m-%d %H")
        found = self._memo.get((date, hour), -1)
        if found != -1:
            return found
        try:
            after = calendar.sessions(pd.Timestamp(date) + pd.Timedelta(days=1), now.tz_localize(None).normalize())
            closed = [s for s in after if s.date() < now.date() or now.hour >= 16]
            age: int | None = len(closed)
        except ValueError:  # beyond the exchange calendar's known sessions
            age = None
        if len(self._memo) > 10_000:
            self._memo.clear()
        self._memo[(date, hour)] = age
        return age
