import duckdb
import pandas as pd
import pytest

from stockpred_assets.core.simulation import simulate_bars
from stockpred_resources.lake import DuckDBResource
from stockpred_resources.storage import Lake, MissingPartitionsError

DAYS = list(pd.date_range("2024-07-01", "2024-07-05", freq="B"))  # includes the 4 July holiday


def test_partitions_are_replaced_not_duplicated(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    bars = simulate_bars(7, 4, DAYS[0], DAYS[-1])
    paths = lake.write_partitions("raw", "bars", bars, DAYS)
    assert [p.rsplit("/", 2)[1] for p in paths] == [f"date={d:%Y-%m-%d}" for d in DAYS]
    lake.write_partitions("raw", "bars", bars, DAYS)
    lake.write_partitions("raw", "bars", bars[bars["date"] == DAYS[1]], [DAYS[1]])
    back = lake.read_range("raw", "bars", DAYS[0], DAYS[-1])
    assert len(back) == len(bars) == 4 * 4
    assert not back.duplicated(["date", "ticker"]).any()
    assert lake.partition_dates("raw", "bars") == DAYS  # the holiday is a written, empty partition
    assert not list((tmp_path / "lake" / "raw" / "bars" / "_staging").iterdir())


def test_rows_outside_the_partitions_and_missing_partitions_are_errors(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    bars = simulate_bars(7, 2, DAYS[0], DAYS[-1])
    with pytest.raises(ValueError, match="rows dated outside"):
        lake.write_partitions("raw", "bars", bars, DAYS[:2])
    lake.write_partitions("raw", "bars", bars[bars["date"] <= DAYS[1]], DAYS[:2])
    with pytest.raises(MissingPartitionsError, match="lacks 3 partition"):
        lake.require_partitions("raw", "bars", DAYS)
    with pytest.raises(FileNotFoundError, match="has not been written"):
        lake.read_table("serving", "online_features")


def test_duckdb_view_reads_the_hive_partitioned_table(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    bars = simulate_bars(7, 3, DAYS[0], DAYS[-1])
    lake.write_partitions("validated", "bars", bars, DAYS)
    catalog = DuckDBResource(database=str(tmp_path / "catalog.duckdb"))
    view = catalog.register_view(lake, "validated", "bars")
    con = duckdb.connect(str(tmp_path / "catalog.duckdb"), read_only=True)
    rows = con.execute(f"SELECT date, count(*) FROM {view} GROUP BY date ORDER BY date").fetchall()
    assert [(pd.Timestamp(d), n) for d, n in rows] == [(d, 3) for d in DAYS if d != pd.Timestamp("2024-07-04")]
