"""Dagster resources over the lake: Parquet via fsspec (local path or s3:// through s3fs) and a DuckDB catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from pydantic import Field

from stockpred_core.io.lake import Lake


class LakeResource(dg.ConfigurableResource):
    """Parquet tables under `url`, hive-partitioned by date."""

    url: str = Field(description="Root of the lake: a local path, file:// or s3:// URL")
    storage_options: dict = Field(default_factory=dict, description="fsspec options, e.g. S3 endpoint_url or key")

    def lake(self) -> Lake:
        return Lake(self.url, self.storage_options)

    def write_partitions(self, layer: str, table: str, frame: pd.DataFrame, days) -> list[str]:
        return self.lake().write_partitions(layer, table, frame, days)

    def read_range(self, layer: str, table: str, start, end, columns: list[str] | None = None) -> pd.DataFrame:
        return self.lake().read_range(layer, table, start, end, columns)

    def write_table(self, layer: str, table: str, frame: pd.DataFrame) -> str:
        return self.lake().write_table(layer, table, frame)

    def require_partitions(self, layer: str, table: str, days) -> None:
        self.lake().require_partitions(layer, table, days)

    def read_table(self, layer: str, table: str) -> pd.DataFrame:
        return self.lake().read_table(layer, table)


class DuckDBResource(dg.ConfigurableResource):
    """A DuckDB catalog file whose views read the lake's tables in place."""

    database: str = Field(description="Path of the DuckDB catalog file")

    @contextmanager
    def connect(self, lake: Lake | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.database)
        try:
            if lake is not None and lake.fs.protocol not in ("file", ("file", "local")):
                con.register_filesystem(lake.fs)
            yield con
        finally:
            con.close()

    def read_window(self, lake: Lake, layer: str, table: str, start, end) -> pd.DataFrame:
        """Rows of a date-partitioned table dated in [start, end], read by DuckDB in an in-memory session (partition
        pruning on the hive `date` key; the catalog file is not opened, so concurrent runs never contend for it)."""
        pattern = f"{lake.table_url(layer, table)}/date=*/*.parquet"
        if not lake.partition_dates(layer, table):
            return pd.DataFrame()
        con = duckdb.connect()
        try:
            if lake.fs.protocol not in ("file", ("file", "local")):
                con.register_filesystem(lake.fs)
            frame = con.sql(
                f"SELECT * FROM read_parquet('{pattern}', hive_partitioning=true, union_by_name=true) "
                "WHERE date BETWEEN $start AND $end ORDER BY date, ticker",
                params={"start": pd.Timestamp(start).date(), "end": pd.Timestamp(end).date()},
            ).to_arrow_table()
        finally:
            con.close()
        frame = frame.to_pandas()  # the Arrow -> pandas conversion the lake's own reads use
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
        return frame

    def register_view(
        self, lake: Lake, layer: str, table: str, partitioned: bool = True, view: str | None = None
    ) -> str:
        """Create or replace a view (default `<layer>_<table>`) over the table's Parquet files; returns its name."""
        name = view or f"{layer}_{table}"
        pattern = f"{lake.table_url(layer, table)}/{'date=*' if partitioned else 'current'}/*.parquet"
        with self.connect(lake) as con:
            con.execute(
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM "
                f"read_parquet('{pattern}', hive_partitioning={'true' if partitioned else 'false'}, union_by_name=true)"
            )
        return name
