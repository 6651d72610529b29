"""raw_bars_<provider> assets: one run per backfill, one request per ticker, incremental, dead-letter, nothing lost."""

import json
import logging

import dagster as dg
import pandas as pd
import pytest
from support import SHARED_DATA
from support.recorded_server import RecordedServer, Reply

from stockpred_assets.ingestion.assets import raw_bars_files, raw_bars_simulated, raw_bars_yahoo
from stockpred_assets.ingestion.automation import dead_letter_retry_sensor
from stockpred_assets.validation.assets import validated_bars
from stockpred_core.data.ingestion import combine, tickers_to_fetch
from stockpred_core.data.schemas import RAW_BAR_COLUMNS
from stockpred_core.io.http_client import UnknownTickerError
from stockpred_core.io.lake import Lake
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.providers import FilesProvider, SimulatedProvider, YahooProvider

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


def test_backfill_is_one_run_reading_the_file_once_for_every_ticker_with_a_dead_letter(tmp_path, sp500_file):
    instance = dg.DagsterInstance.ephemeral()
    provider = FilesProvider(path=sp500_file, tickers=["AAPL", "LNT", "NOPE"])
    result = run(raw_bars_files, "files_provider", provider, tmp_path, instance)
    meta, partitions = metadata(result, "raw_bars_files")
    assert len(instance.get_runs()) == 1 and partitions == len(WEEKDAYS)
    assert (meta["requests"], meta["tickers_fetched"], meta["failed_tickers"]) == (1, 3, 1)  # one read, one filter
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


def test_yahoo_through_the_asset_lands_good_tickers_and_dead_letters_bad_ones(tmp_path, shared_data):
    body = (shared_data / "providers" / "yahoo" / "chart" / "chart-AAPL-2020-08-31-to-2020-11-07.json").read_text()
    not_found = (
        '{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}'
    )
    server = RecordedServer().start()
    try:
        server.route("/v8/finance/chart/AAPL", Reply.json(json.dumps(json.loads(body)["response"]["bodyJson"])))
        server.route("/v8/finance/chart/NOPE", Reply.json(not_found, status=404))
        server.route("/v8/finance/chart/DOWN", Reply.text("upstream down", status=503))
        yahoo = YahooProvider(
            base_url=server.url,
            tickers=["AAPL", "NOPE", "DOWN"],
            max_attempts=3,
            backoff_base_s=0.001,
            backoff_max_s=0.005,
            requests_per_minute=1e6,
        )
        tags = {"dagster/asset_partition_range_start": "2020-09-01", "dagster/asset_partition_range_end": "2020-09-30"}
        result = dg.materialize(
            [raw_bars_yahoo],
            resources={"yahoo_provider": yahoo, "lake": LakeResource(url=str(tmp_path))},
            instance=dg.DagsterInstance.ephemeral(),
            tags=tags,
        )
    finally:
        server.stop()
    meta, partitions = metadata(result, "raw_bars_yahoo")
    assert result.success and partitions == len(pd.bdate_range("2020-09-01", "2020-09-30"))
    assert (meta["requests"], meta["failed_tickers"]) == (1 + 1 + 3, 2)  # DOWN was tried three times
    lake = Lake(str(tmp_path))
    bars = lake.read_range("raw", "bars_yahoo", "2020-09-01", "2020-09-30")
    assert set(bars["ticker"]) == {"AAPL"} and len(bars) == 21  # September 2020 had 21 sessions (Labor Day)
    dead = lake.read_range("raw", "dead_letter_yahoo", "2020-09-30", "2020-09-30").set_index("ticker")
    assert dead.loc["NOPE", "kind"] == "unknown_ticker" and not dead.loc["NOPE", "retryable"]
    assert dead.loc["DOWN", "kind"] == "transient" and dead.loc["DOWN", "retryable"]
    assert dead.loc["DOWN", "requests"] == 3 and "503" in dead.loc["DOWN", "reason"]


def test_dead_letter_sensor_requests_the_partitions_with_retryable_failures(tmp_path):
    lake = Lake(str(tmp_path))
    today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
    recent, old = today - pd.Timedelta(days=2), today - pd.Timedelta(days=30)
    failure = {
        "ticker": "DOWN",
        "provider": "simulated",
        "kind": "transient",
        "reason": "503",
        "retryable": True,
        "attempted_at": pd.Timestamp("2026-01-01 10:00"),
        "requests": 3,
        "request_id": "r1",
    }
    for day in (recent, old):
        lake.write_partitions("raw", "dead_letter_simulated", pd.DataFrame([{**failure, "date": day}]), [day])
    unknown = {**failure, "ticker": "NOPE", "kind": "unknown_ticker", "retryable": False}
    yesterday = today - pd.Timedelta(days=1)
    lake.write_partitions("raw", "dead_letter_simulated", pd.DataFrame([{**unknown, "date": yesterday}]), [yesterday])
    context = dg.build_sensor_context(
        resources={"lake": LakeResource(url=str(tmp_path)), "market_data": MarketDataResource(providers=["simulated"])}
    )
    requests = dead_letter_retry_sensor(context)
    assert [r.partition_key for r in requests] == [f"{recent:%Y-%m-%d}"]
    assert requests[0].tags["stockpred/retry"] == "DOWN"


BAD_FILE = """date,open,high,low,close,volume,Name
2024-03-04,10,11,9,10.5,100,AAA
2024-03-05,10,11,9,10.6,100,AAA
2024-03-06,10,11,9,10.7,100,AAA
2024-03-07,10,11,9,10.8,100,AAA
2024-03-08,10,11,9,10.9,100,AAA
2024-03-04,20,21,19,20.5,100,BBB
2024-03-05,,21,19,20.5,100,BBB
2024-03-06,12.3,1
2024-02-30,10,11,9,10.5,100,AAA
2024-03-07,abc,21,19,20.5,100,BBB
2099-03-06,10,11,9,10.5,100,AAA
2024-03-09,10,11,9,10.5,100,AAA
2024-03-08,20,21,19,20.5,100,BBB,oops
"""


def test_bad_rows_of_a_file_are_rejected_with_reasons_and_the_rest_is_ingested_and_counted(tmp_path):
    (tmp_path / "bars.csv").write_text(BAD_FILE)
    instance = dg.DagsterInstance.ephemeral()
    resources = {
        "files_provider": FilesProvider(path=str(tmp_path / "bars.csv")),
        "market_data": MarketDataResource(providers=["files"]),
        "lake": LakeResource(url=str(tmp_path / "lake")),
        "duckdb": DuckDBResource(database=str(tmp_path / "catalog.duckdb")),
    }
    tags = {"dagster/asset_partition_range_start": "2024-03-04", "dagster/asset_partition_range_end": "2024-03-08"}
    result = dg.materialize([raw_bars_files, validated_bars], resources=resources, tags=tags, instance=instance)
    assert result.success
    meta, _ = metadata(result, "raw_bars_files")
    assert (meta["rows_read"], meta["rows_rejected"]) == (13, 6)  # every data line of the file
    rejects = Lake(str(tmp_path / "lake")).read_table("raw", "rejects_files")
    assert dict(zip(rejects["raw"], rejects["reason"], strict=True)) == {
        "2024-03-06,12.3,1,,,,": "missing ticker, low, close, volume",
        "2024-02-30,10,11,9,10.5,100,AAA": "date '2024-02-30' is not a valid date",
        "2024-03-07,abc,21,19,20.5,100,BBB": "open 'abc' is not a number",
        "2099-03-06,10,11,9,10.5,100,AAA": "2099-03-06 (Friday) is in the future",
        "2024-03-09,10,11,9,10.5,100,AAA": "2024-03-09 (Saturday) is not an NYSE session",
        "2024-03-08,20,21,19,20.5,100,BBB,oops": "line 14: expected 7 fields, saw 8",
    }
    # the window 03-04..03-08 holds 7 loaded rows and 3 rejected ones; 2024-02-30 belongs to no window
    window = (meta["window_rows_read"], meta["window_rows_rejected"], meta["rows_rejected_undated"])
    assert window == (10, 3, 1)
    checked, _ = metadata(result, "validated_bars")
    assert checked["rows_in"] == 13 - 6 == 10 - 3 == checked["rows_valid"] + checked["rows_quarantined"]
    assert (checked["rows_valid"], checked["quarantined_by_rule"]) == (6, {"open:not_nullable": 1})
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any(m.startswith("files: 6 source row(s) rejected, kept in ") for m in logged)


def test_a_daily_run_over_a_longer_file_counts_its_own_window_and_keeps_each_reject_once(tmp_path):
    """A daily run over a multi-year file: the window's counts add up to what validated_bars reads, and running
    the day again adds no second copy of any reject."""
    (tmp_path / "bars.csv").write_text(BAD_FILE)
    resources = {
        "files_provider": FilesProvider(path=str(tmp_path / "bars.csv")),
        "market_data": MarketDataResource(providers=["files"]),
        "lake": LakeResource(url=str(tmp_path / "lake")),
        "duckdb": DuckDBResource(database=str(tmp_path / "catalog.duckdb")),
    }
    for _ in range(2):
        result = dg.materialize([raw_bars_files, validated_bars], resources=resources, partition_key="2024-03-06")
        assert result.success
    meta, _ = metadata(result, "raw_bars_files")
    assert (meta["window_rows_read"], meta["window_rows_rejected"]) == (2, 1)  # AAA's bar and the truncated line
    checked, _ = metadata(result, "validated_bars")
    assert checked["rows_in"] == 2 - 1 == checked["rows_valid"] + checked["rows_quarantined"]
    assert len(Lake(str(tmp_path / "lake")).read_table("raw", "rejects_files")) == 6


def test_an_empty_file_is_a_clear_empty_result(tmp_path):
    (tmp_path / "bars.csv").write_text("")
    result = run(
        raw_bars_files,
        "files_provider",
        FilesProvider(path=str(tmp_path / "bars.csv")),
        tmp_path,
        None,
        tags={"dagster/partition": "2024-03-04"},
    )
    meta, _ = metadata(result, "raw_bars_files")
    assert result.success and (meta["rows_read"], meta["rows_rejected"], meta["dagster/row_count"]) == (0, 0, 0)
    assert meta["notes"] == ["bars.csv has no rows"]


def test_a_folder_of_per_ticker_txt_downloads_loads_with_tickers_from_the_file_names(tmp_path, sp500_file):
    """A common download format: one <ticker>.us.txt per stock (Date,Open,High,Low,Close,Volume,OpenInt), beside a
    file that holds no bars (reported, the rest loads)."""
    real = pd.read_csv(sp500_file, parse_dates=["date"])
    folder = tmp_path / "stocks"
    folder.mkdir()
    for ticker in ("AAPL", "MSFT"):
        rows = real[(real["Name"] == ticker) & real["date"].between("2014-01-02", "2014-01-31")]
        txt = rows.rename(columns=str.capitalize)[["Date", "Open", "High", "Low", "Close", "Volume"]].assign(OpenInt=0)
        txt.to_csv(folder / f"{ticker.lower()}.us.txt", index=False)
    (folder / "readme.txt").write_text("Daily prices, one file per stock\n")
    provider = FilesProvider(path=str(folder))
    assert provider.universe() == ["AAPL", "MSFT"]
    bars = provider.fetch_bars(pd.Timestamp("2014-01-02"), pd.Timestamp("2014-01-31")).bars
    expected = real[real["Name"].isin(["AAPL", "MSFT"]) & real["date"].between("2014-01-02", "2014-01-31")]
    assert len(bars) == len(expected) == 2 * 21  # January 2014 had 21 sessions
    assert (
        bars.set_index(["ticker", "date"])["close"].sort_index().tolist()
        == expected.set_index(["Name", "date"])["close"].sort_index().tolist()
    )
    assert provider.notes() == ["readme.txt has no rows"] and provider.rejects().empty  # named, not silently skipped


def test_per_ticker_files_with_other_column_spellings_and_utc_offsets_load(tmp_path):
    """The FNSPID per-ticker files: `Adj close` (any case and spacing maps), dates with a UTC offset
    ("2014-01-02 00:00:00+00:00"), lower-case file names, extra columns (sentiment) left aside."""
    source = SHARED_DATA / "alternative" / "news" / "fnspid_daily_sentiment"
    if not source.is_dir():
        pytest.skip(f"{source} is not here (../shared/data)")
    folder = tmp_path / "fnspid"
    folder.mkdir()
    originals = {}
    for name in ("KO.csv", "pep.csv"):
        text = pd.read_csv(source / name, dtype=str)
        rows = text[text["Date"].str[:7] == "2014-01"]
        rows.to_csv(folder / name, index=False)
        originals[name.split(".")[0].upper()] = rows
    provider = FilesProvider(path=str(folder))
    assert provider.universe() == ["KO", "PEP"]
    bars = provider.fetch_bars(pd.Timestamp("2014-01-02"), pd.Timestamp("2014-01-31")).bars
    assert len(bars) == 2 * 21 and provider.rejects().empty and not provider.notes()
    for ticker, rows in originals.items():
        got = bars[bars["ticker"] == ticker].sort_values("date")
        assert got["date"].dt.strftime("%Y-%m-%d").tolist() == rows["Date"].str[:10].tolist()
        assert got["adj_close"].tolist() == rows["Adj close"].astype(float).tolist()
        assert got["close"].tolist() == rows["Close"].astype(float).tolist()


def test_the_files_provider_finds_each_tickers_rows_by_binary_search(sp500_file):
    """Every ticker of the real 5-year file, a window whose edges fall on sessions and one with no rows: the same rows
    as a boolean filter of the whole table (what fetch_history did per ticker, rows x tickers in all)."""
    provider = FilesProvider(path=str(sp500_file))
    table = provider.table()
    for start, end in (("2015-03-02", "2015-03-31"), ("2013-02-08", "2013-02-08"), ("2019-01-02", "2019-01-31")):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        report = provider.fetch_bars(start, end)
        expected = table[table["date"].between(start, end)][RAW_BAR_COLUMNS].reset_index(drop=True)
        got = report.bars.sort_values(["ticker", "date"], ignore_index=True)
        if expected.empty:  # after the file's last date
            assert got.empty and not len(report.failures)
        else:
            pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(UnknownTickerError, match="NOPE is not in"):
        provider.fetch_history("NOPE", pd.Timestamp("2015-03-02"), pd.Timestamp("2015-03-31"))


def test_a_multi_year_parquet_file_is_read_for_the_runs_window_only(tmp_path):
    """A Parquet file with New York timestamps: a daily run reads its window (+-2 days), knows every ticker of the
    file (one without rows near the window is not unknown), and merges the sectors it saw into the recorded ones."""
    from stockpred_assets.ingestion.assets import merge_sectors

    days = pd.bdate_range("2024-01-02", "2024-03-29")
    frame = pd.DataFrame(
        [(d, t, 10.0, 11.0, 9.0, 10.5, 100.0) for d in days for t in ("AAA", "BBB") if t == "AAA" or d < days[20]],
        columns=["date", "ticker", "open", "high", "low", "close", "volume"],
    )
    frame["date"] = frame["date"].dt.tz_localize("America/New_York")
    frame.to_parquet(tmp_path / "bars.parquet", index=False)
    provider = FilesProvider(path=str(tmp_path / "bars.parquet"), tickers=["AAA", "BBB", "NOPE"])
    provider.set_window(pd.Timestamp("2024-03-13"), pd.Timestamp("2024-03-13"))
    assert provider.table()["date"].between("2024-03-11", "2024-03-15").all()  # the window's rows only
    report = provider.fetch_bars(pd.Timestamp("2024-03-13"), pd.Timestamp("2024-03-13"), ["AAA", "BBB", "NOPE"])
    assert list(report.bars["ticker"]) == ["AAA"] and list(report.failures["ticker"]) == ["NOPE"]
    assert report.requests == 1
    earlier = pd.DataFrame({"ticker": ["BBB", "CCC"], "sector": ["Energy", "Utilities"]})
    fresh = pd.DataFrame({"ticker": ["AAA", "BBB"], "sector": ["Financials", "Materials"]})
    assert merge_sectors(earlier, fresh).to_dict("list") == {
        "ticker": ["AAA", "BBB", "CCC"],
        "sector": ["Financials", "Materials", "Utilities"],
    }
