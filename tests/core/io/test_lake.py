import signal
import subprocess
import sys
import threading

import duckdb
import pandas as pd
import pytest

from stockpred_core.data.simulation import simulate_bars
from stockpred_core.io.lake import Lake, LakeBusyError, MissingPartitionsError
from stockpred_resources.lake import DuckDBResource

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


WRITER = """
import os, signal, sys
import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from stockpred_core.data.simulation import simulate_bars
from stockpred_core.io.lake import Lake

moves, move = 0, LocalFileSystem.mv

def killed_on_second_move(self, *args, **kwargs):  # SIGKILL after partition 1 is replaced, before partition 2 is
    global moves
    moves += 1
    if moves == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return move(self, *args, **kwargs)

LocalFileSystem.mv = killed_on_second_move
bars = simulate_bars(7, 4, "2024-07-01", "2024-07-05").assign(volume=-1.0)
Lake(sys.argv[1]).write_partitions("raw", "bars", bars, pd.date_range("2024-07-01", "2024-07-05", freq="B"))
"""


def test_a_writer_killed_mid_write_leaves_every_partition_old_or_new_and_the_next_write_cleans_up(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write_partitions("raw", "bars", simulate_bars(7, 4, DAYS[0], DAYS[-1]), DAYS)
    child = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "lake")], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

    back = lake.read_range("raw", "bars", DAYS[0], DAYS[-1])
    assert lake.partition_dates("raw", "bars") == DAYS and len(back) == 4 * 4  # nothing lost, nothing empty
    assert back.groupby("date")["volume"].min().lt(0).tolist() == [True, False, False, False]  # day 1 new, rest old
    con = duckdb.connect()
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/lake/raw/bars/date=*/*.parquet')").fetchone()
    assert rows == (16,)
    staging = tmp_path / "lake" / "raw" / "bars" / "_staging"
    assert len(list(staging.iterdir())) == 1  # the crashed writer's staged file

    lake.write_partitions("raw", "bars", back[back["date"] == DAYS[0]], DAYS[:1])
    assert not list(staging.iterdir())  # cleaned by the next writer


def test_a_concurrent_writer_waits_for_the_lock_or_fails_clearly(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    old, new = simulate_bars(7, 2, DAYS[0], DAYS[-1]), simulate_bars(8, 2, DAYS[0], DAYS[-1])
    lake.write_partitions("raw", "bars", old, DAYS)
    impatient = Lake(str(tmp_path / "lake"), lock_timeout_s=0.3)
    with lake.write_lock("raw", "bars"):
        with pytest.raises(LakeBusyError, match=r"raw/bars is being written by another run; waited 0\.3 s"):
            impatient.write_partitions("raw", "bars", new, DAYS)
        writer = threading.Thread(target=lake.write_partitions, args=("raw", "bars", new, DAYS))
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive()  # waiting for the lock
        assert lake.read_range("raw", "bars", DAYS[0], DAYS[-1])["close"].tolist() == old["close"].tolist()
    writer.join(timeout=30)
    back = lake.read_range("raw", "bars", DAYS[0], DAYS[-1])
    assert back["close"].tolist() == new.sort_values("date", kind="stable")["close"].tolist()


def test_a_ticker_filter_reads_empty_partitions_of_null_typed_columns(tmp_path):
    """A holiday's partition written from an empty frame has null-typed columns: a ticker filter skips it."""
    from stockpred_core.data.schemas import empty_bars

    lake = Lake(str(tmp_path / "lake"))
    lake.write_partitions("validated", "bars", empty_bars(), [DAYS[3]])
    bars = simulate_bars(7, 4, DAYS[0], DAYS[0])
    lake.write_partitions("validated", "bars", bars, [DAYS[0]])
    one = bars["ticker"].iloc[0]
    got = lake.read_range("validated", "bars", DAYS[0], DAYS[-1], tickers=[one])
    assert list(got["ticker"]) == [one]


def test_state_files_keep_the_newest_and_row_counts_and_write_times_come_from_the_listing(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    for day in DAYS:
        lake.write_state("features", "state", day, day.strftime("%d").encode(), keep=2)
    assert lake.partition_dates("features", "state") == DAYS[-2:]
    assert lake.read_state("features", "state", DAYS[-1]) == DAYS[-1].strftime("%d").encode()
    assert lake.read_state("features", "state", DAYS[0]) is None
    bars = simulate_bars(7, 4, DAYS[0], DAYS[1])
    lake.write_partitions("raw", "bars", bars, DAYS[:2])
    assert lake.row_count("raw", "bars", DAYS[0]) == 4 and lake.row_count("raw", "bars", DAYS[2]) == 0
    written = lake.written_at("raw", "bars", DAYS[0], DAYS[-1])
    assert sorted(written) == DAYS[:2]
    assert lake.written_since("raw", "bars", DAYS[0], DAYS[-1], max(written.values())) == []
    assert lake.written_since("raw", "bars", DAYS[0], DAYS[-1], min(written.values()) - 1) == DAYS[:2]
