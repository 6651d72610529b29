"""raw_bars_<provider> assets: one run per backfill, one request per ticker, incremental, dead-letter, nothing lost."""

import dagster as dg
import pandas as pd
import pytest

from stockpred_assets.core.ingestion import combine, tickers_to_fetch
from stockpred_assets.ingestion.assets import raw_bars_files, raw_bars_simulated
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import FilesProvider, SimulatedProvider
from stockpred_resources.storage import Lake

RANGE = {"dagster/asset_partition_range_start": "2016-05-02", "dagster/asset_partition_range_end": "2016-06-30"}
WEEKDAYS = pd.bdate_range("2016-05-02", "2016-06-30")
SESSIONS = WEEKDAYS.drop(pd.Timestamp("2016-05-30"))  # Memorial Day


@pytest.fixture
def sp500_file(shared_data):
    return str(shared_data / "market" / "all_stocks_5yr.csv.gz")


def run(asset, provider_key, provider, lake_dir, instance, run_config=None, tags=RANGE):
    return dg.materialize(
        [asset],
        resources={provider_key: provider, "lake": LakeResource(url=str(lake_dir))},
        instance=instance,
        tags=tags,
        run_config=run_config,
    )


def metadata(result, asset_name):
    events = result.asset_materializations_for_node(asset_name)
    return {k: v.value for k, v in events[-1].metadata.items()}, len(events)


def test_backfill_is_one_run_with_one_request_per_ticker_and_a_dead_letter(tmp_path, sp500_file):
    instance = dg.DagsterInstance.ephemeral()
    provider = FilesProvider(path=sp500_file, tickers=["AAPL", "LNT", "NOPE"])
    result = run(raw_bars_files, "files_provider", provider, tmp_path, instance)
    meta, partitions = metadata(result, "raw_bars_files")
    assert len(instance.get_runs()) == 1 and partitions == len(WEEKDAYS)
    assert (meta["requests"], meta["tickers_fetched"], meta["failed_tickers"]) == (3, 3, 1)
    lake = Lake(str(tmp_path))
    bars = lake.read_range("raw", "bars_files", WEEKDAYS[0], WEEKDAYS[-1])
    assert len(bars) == 2 * len(SESSIONS) and set(bars["date"]) == set(SESSIONS)
    assert bars["request_id"].notna().all() and (bars["provider"] == "files").all()
    dead = lake.read_range("raw", "dead_letter_files", WEEKDAYS[0], WEEKDAYS[-1])
    assert set(dead["ticker"]) == {"NOPE"} and len(dead) == len(SESSIONS)
    assert dead["kind"].iloc[0] == "unknown_ticker" and not dead["retryable"].iloc[0]
    assert lake.read_range("raw", "bars_files", "2016-05-30", "2016-05-30").empty  # the holiday: an empty partition


def test_reruns_fetch_only_missing_tickers_and_growing_the_universe_backfills_new_ones(tmp_path, sp500_file):
    instance = dg.DagsterInstance.ephemeral()
    run(raw_bars_files, "files_provider", FilesProvider(path=sp500_file, tickers=["AAPL"]), tmp_path, instance)
    first = Lake(str(tmp_path)).read_range("raw", "bars_files", WEEKDAYS[0], WEEKDAYS[-1])

    grown = FilesProvider(path=sp500_file, tickers=["AAPL", "MSFT"])
    meta, _ = metadata(run(raw_bars_files, "files_provider", grown, tmp_path, instance), "raw_bars_files")
    assert meta["tickers_fetched"] == 1 and meta["requests"] == 1  # only MSFT
    second = Lake(str(tmp_path)).read_range("raw", "bars_files", WEEKDAYS[0], WEEKDAYS[-1])
    assert len(second) == 2 * len(SESSIONS) and not second.duplicated(["date", "ticker"]).any()
    aapl = second[second["ticker"] == "AAPL"]
    assert aapl["request_id"].tolist() == first["request_id"].tolist()  # kept, not refetched

    refetch = {"ops": {"raw_bars_files": {"config": {"refetch": True}}}}
    meta, _ = metadata(run(raw_bars_files, "files_provider", grown, tmp_path, instance, refetch), "raw_bars_files")
    assert meta["tickers_fetched"] == 2


def test_a_failed_refetch_keeps_the_rows_it_had(tmp_path, sp500_file):
    instance = dg.DagsterInstance.ephemeral()
    sim = SimulatedProvider(universe_size=5, tickers=["S00001", "S00002"])
    run(raw_bars_simulated, "simulated_provider", sim, tmp_path, instance)
    shrunk = SimulatedProvider(universe_size=2, tickers=["S00001", "S00002"])  # S00002 is now unknown to it
    refetch = {"ops": {"raw_bars_simulated": {"config": {"refetch": True}}}}
    meta, _ = metadata(
        run(raw_bars_simulated, "simulated_provider", shrunk, tmp_path, instance, refetch), "raw_bars_simulated"
    )
    assert meta["failed_tickers"] == 1
    bars = Lake(str(tmp_path)).read_range("raw", "bars_simulated", WEEKDAYS[0], WEEKDAYS[-1])
    assert bars.groupby("ticker").size().to_dict() == {"S00001": len(SESSIONS), "S00002": len(SESSIONS)}


def test_a_holiday_partition_is_a_valid_empty_session(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result = run(
        raw_bars_simulated,
        "simulated_provider",
        SimulatedProvider(universe_size=3),
        tmp_path,
        instance,
        tags={"dagster/partition": "2016-07-04"},
    )
    meta, partitions = metadata(result, "raw_bars_simulated")
    assert result.success and partitions == 1 and meta["dagster/row_count"] == 0 and meta["requests"] == 0


def test_planning_and_combining_rows():
    sessions = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    old, new = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-10")
    existing = pd.DataFrame(
        {
            "date": [sessions[0], sessions[1], sessions[0]],
            "ticker": ["A", "A", "B"],
            "ingested_at": [old, old, new],
            "close": [1.0, 2.0, 3.0],
        }
    )
    assert tickers_to_fetch(["A", "B", "C"], sessions, existing) == ["B", "C"]
    assert tickers_to_fetch(["A", "B"], sessions, existing, max_age=pd.Timedelta(days=3), now=new) == ["A", "B"]
    assert tickers_to_fetch(["A"], sessions, existing, refetch=True) == ["A"]
    assert tickers_to_fetch(["A"], sessions[:0], existing) == []
    fetched = pd.DataFrame({"date": [sessions[1]], "ticker": ["B"], "ingested_at": [new], "close": [4.0]})
    rows = combine(existing, fetched, {"B"}, sessions, ["A", "B"], ["date", "ticker", "ingested_at", "close"])
    assert rows[["ticker", "close"]].values.tolist() == [["A", 1.0], ["A", 2.0], ["B", 4.0]]
