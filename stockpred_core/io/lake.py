"""The lake: Parquet tables on any fsspec filesystem, hive-partitioned by session date.

`<root>/<layer>/<table>/date=YYYY-MM-DD/part-0.parquet`. Writing a partition stages the whole file aside and moves
it over the old one (an atomic rename locally, an atomic object PUT on S3), so a reader, or a crash at any point, sees
the old partition or the new one, never nothing. Local writers of a table take a file lock, so a concurrent writer
waits. No Dagster import: the prediction service reads the lake through the same class.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import filelock
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PART_FILE = "part-0.parquet"
STATE_FILE = "state.npz"
STAGING = "_staging"
LOCK_TIMEOUT_S = 600.0  # how long a writer waits for another run writing the same table
STALE_STAGING_S = 3600.0  # unlocked (object store) staging files older than this are left by a crashed writer


def _read_part(handle, columns: list[str] | None, filters: list | None) -> pa.Table:
    """One partition file, filtered; an empty partition written from an empty frame has null-typed columns, which
    a filter cannot compare: it is read whole (it has no rows to filter)."""
    try:
        return pq.read_table(handle, columns=columns, filters=filters)
    except (pa.ArrowTypeError, pa.ArrowNotImplementedError, pa.ArrowInvalid):
        if filters is None:
            raise
        handle.seek(0)
        table = pq.read_table(handle, columns=columns)
        if table.num_rows:
            raise
        return table


class MissingPartitionsError(LookupError):
    """A table lacks partitions a reader needs."""


class LakeBusyError(TimeoutError):
    """Another writer held the table's lock for longer than the wait allowed."""


class Lake:
    def __init__(self, url: str, storage_options: dict | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.lock_timeout_s = lock_timeout_s
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.root = self.root.rstrip("/")

    def table_path(self, layer: str, table: str) -> str:
        return f"{self.root}/{layer}/{table}"

    def table_url(self, layer: str, table: str) -> str:
        """The table's location as a URL (what DuckDB and users see)."""
        return f"{self.url}/{layer}/{table}"

    @property
    def local(self) -> bool:
        return self.fs.protocol in ("file", ("file", "local"))

    @contextmanager
    def write_lock(self, layer: str, table: str) -> Iterator[None]:
        """Exclusive right to write a local table (object stores have no lock: their PUTs are atomic)."""
        if not self.local:
            yield
            return
        base = self.table_path(layer, table)
        self.fs.makedirs(base, exist_ok=True)
        try:
            with filelock.FileLock(f"{base}/.write.lock", timeout=self.lock_timeout_s):
                yield
        except filelock.Timeout:
            waited = f"waited {self.lock_timeout_s:g} s"
            raise LakeBusyError(f"{layer}/{table} is being written by another run; {waited}") from None

    def _clean_staging(self, layer: str, table: str) -> None:
        """Remove staging files a crashed writer left: all of them under the lock, old ones on object stores."""
        staging = f"{self.table_path(layer, table)}/{STAGING}"
        if not self.fs.exists(staging):
            return
        for info in self.fs.ls(staging, detail=True):
            modified = info.get("LastModified")  # what S3 reports; local files are all stale under the lock
            if self.local or (modified is not None and time.time() - modified.timestamp() > STALE_STAGING_S):
                self.fs.rm(info["name"])

    def _put(self, frame: pd.DataFrame | pa.Table, target_dir: str, layer: str, table: str) -> str:
        """Write the file aside in full, then move it over the partition's file in one atomic step."""
        buffer = io.BytesIO()
        arrow = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(arrow, buffer)
        staging = f"{self.table_path(layer, table)}/{STAGING}/{uuid.uuid4().hex}.parquet"
        self.fs.makedirs(staging.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(staging, "wb") as out:
            out.write(buffer.getvalue())
        self.fs.makedirs(target_dir, exist_ok=True)
        target = f"{target_dir}/{PART_FILE}"
        self.fs.mv(staging, target)
        return target

    def write_partitions(self, layer: str, table: str, frame: pd.DataFrame, days: Iterable[pd.Timestamp]) -> list[str]:
        """Replace the partitions for `days` with the rows of `frame` dated on each (empty days get empty files)."""
        days = [pd.Timestamp(d).normalize() for d in days]
        if len(frame.columns) == 0:
            raise ValueError(f"{layer}/{table}: a frame without columns cannot be written (give empty frames a schema)")
        dates = pd.to_datetime(frame["date"]).dt.normalize() if len(frame) else pd.Series(dtype="datetime64[ns]")
        extra = set(dates.unique()) - set(days)
        if extra:
            raise ValueError(f"{layer}/{table}: rows dated outside the partitions written: {sorted(extra)[:3]}")
        # Convert to Arrow once and write zero-copy slices: per-day pandas conversions would dominate a backfill.
        order = np.argsort(dates.to_numpy(), kind="stable") if len(frame) else np.array([], dtype=int)
        arrow = pa.Table.from_pandas(frame.iloc[order].reset_index(drop=True), preserve_index=False)
        sorted_dates = dates.to_numpy()[order]
        paths = []
        with self.write_lock(layer, table):
            self._clean_staging(layer, table)
            for day in days:
                lo, hi = (
                    np.searchsorted(sorted_dates, np.datetime64(day), "left"),
                    np.searchsorted(sorted_dates, np.datetime64(day), "right"),
                )
                target_dir = f"{self.table_path(layer, table)}/date={day:%Y-%m-%d}"
                paths.append(self._put(arrow.slice(lo, hi - lo), target_dir, layer, table))
        return paths

    def partition_dates(self, layer: str, table: str) -> list[pd.Timestamp]:
        base = self.table_path(layer, table)
        if not self.fs.exists(base):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False)]
        return sorted(pd.Timestamp(n[5:]) for n in names if n.startswith("date="))

    def require_partitions(self, layer: str, table: str, days: Iterable[pd.Timestamp]) -> None:
        """Raise a clear error when any of `days` has not been written (an upstream asset was not materialized)."""
        have = set(self.partition_dates(layer, table))
        missing = [d for d in (pd.Timestamp(x).normalize() for x in days) if d not in have]
        if missing:
            raise MissingPartitionsError(
                f"{layer}/{table} lacks {len(missing)} partition(s), first {missing[0]:%Y-%m-%d}, last "
                f"{missing[-1]:%Y-%m-%d}: materialize the upstream asset for that range first"
            )

    def read_range(
        self,
        layer: str,
        table: str,
        start: pd.Timestamp | str,
        end: pd.Timestamp | str,
        columns: list[str] | None = None,
        tickers: list[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the partitions dated in [start, end] (of `tickers` only, when given); an empty frame when none
        exist."""
        filters = [("ticker", "in", list(tickers))] if tickers is not None else None
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        days = [d for d in self.partition_dates(layer, table) if start <= d <= end]
        base = self.table_path(layer, table)
        tables, schema = [], None
        for day in days:
            try:
                with self.fs.open(f"{base}/date={day:%Y-%m-%d}/{PART_FILE}", "rb") as handle:
                    table = _read_part(handle, columns, filters)
            except FileNotFoundError:  # a partition's first write has made its folder but not yet moved its file in
                continue
            if table.num_rows:
                tables.append(table)
            elif schema is None:
                schema = table  # an empty partition still tells the table's columns
        if not tables:
            return schema.to_pandas() if schema is not None else pd.DataFrame(columns=columns or [])
        # One conversion to pandas for the whole range (per-file conversions would dominate long reads).
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()

    # -- state files: one opaque file per session (the features' carried state), the newest few kept -------------

    def write_state(self, layer: str, table: str, day: pd.Timestamp, data: bytes, keep: int) -> str:
        """Store `data` as the state after session `day` (atomically, as a partition) and drop all but the newest
        `keep` states."""
        day = pd.Timestamp(day).normalize()
        base = self.table_path(layer, table)
        with self.write_lock(layer, table):
            self._clean_staging(layer, table)
            staging = f"{base}/{STAGING}/{uuid.uuid4().hex}.state"
            self.fs.makedirs(staging.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(staging, "wb") as out:
                out.write(data)
            target_dir = f"{base}/date={day:%Y-%m-%d}"
            self.fs.makedirs(target_dir, exist_ok=True)
            target = f"{target_dir}/{STATE_FILE}"
            self.fs.mv(staging, target)
            for old in self.partition_dates(layer, table)[:-keep]:
                self.fs.rm(f"{base}/date={old:%Y-%m-%d}", recursive=True)
        return target

    def row_count(self, layer: str, table: str, day: pd.Timestamp) -> int:
        """The rows of one partition, from its Parquet footer (0 when it does not exist)."""
        path = f"{self.table_path(layer, table)}/date={pd.Timestamp(day):%Y-%m-%d}/{PART_FILE}"
        try:
            with self.fs.open(path, "rb") as handle:
                return pq.ParquetFile(handle).metadata.num_rows
        except FileNotFoundError:
            return 0

    def written_at(self, layer: str, table: str, start, end) -> dict[pd.Timestamp, float]:
        """When each partition dated in [start, end] was last written (seconds since the epoch): one listing of the
        table (a LIST on S3)."""
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        base = self.table_path(layer, table)
        if not self.fs.exists(base):
            return {}
        found = {}
        for path, info in self.fs.find(base, detail=True).items():
            folder, _, name = path.rpartition("/")
            partition = folder.rsplit("/", 1)[-1]
            if name not in (PART_FILE, STATE_FILE) or not partition.startswith("date="):
                continue
            day = pd.Timestamp(partition[5:])
            modified = info.get("mtime", info.get("LastModified"))
            if start <= day <= end:
                found[day] = modified.timestamp() if hasattr(modified, "timestamp") else float(modified)
        return found

    def written_since(self, layer: str, table: str, start, end, since: float) -> list[pd.Timestamp]:
        """The partitions dated in [start, end] written after `since` (seconds since the epoch)."""
        return sorted(day for day, stamp in self.written_at(layer, table, start, end).items() if stamp > since)

    def read_state(self, layer: str, table: str, day: pd.Timestamp) -> bytes | None:
        """The state stored for session `day`, or None."""
        path = f"{self.table_path(layer, table)}/date={pd.Timestamp(day):%Y-%m-%d}/{STATE_FILE}"
        try:
            with self.fs.open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_table(self, layer: str, table: str, frame: pd.DataFrame) -> str:
        """Replace an unpartitioned table."""
        with self.write_lock(layer, table):
            self._clean_staging(layer, table)
            return self._put(frame.reset_index(drop=True), f"{self.table_path(layer, table)}/current", layer, table)

    def update_table(self, layer: str, table: str, change) -> str:
        """Replace an unpartitioned table with `change(current)` (current: None when it has not been written), the
        read and the write under the table's lock (local lakes), so concurrent runs do not lose each other's rows."""
        with self.write_lock(layer, table):
            self._clean_staging(layer, table)
            try:
                current = self.read_table(layer, table)
            except FileNotFoundError:
                current = None
            frame = change(current)
            return self._put(frame.reset_index(drop=True), f"{self.table_path(layer, table)}/current", layer, table)

    def read_table(self, layer: str, table: str) -> pd.DataFrame:
        path = f"{self.table_path(layer, table)}/current/{PART_FILE}"
        if not self.fs.exists(path):
            raise FileNotFoundError(f"lake table {layer}/{table} has not been written yet ({path})")
        with self.fs.open(path, "rb") as handle:
            return pq.read_table(handle).to_pandas()
