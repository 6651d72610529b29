"""The validated-bars checks on real data (the S&P 500 file, 2015-01..2015-07): each that fails says what is wrong and
where, and none fails for something that is not wrong (listings inside the window, a backfill of past years)."""

import re

import dagster as dg
import pandas as pd
import pytest

from stockpred_assets.ingestion.assets import raw_bars_files
from stockpred_assets.validation import checks
from stockpred_assets.validation.assets import validated_bars
from stockpred_core.data import calendar
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.providers import FilesProvider

FIRST, LAST = "2015-01-02", "2015-07-31"
LISTED_INSIDE = ["KHC", "PYPL", "WRK"]  # first bars 2015-06-24 / 07-06


@pytest.fixture(scope="module")
def results(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    raw = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz")
    raw[raw["date"].between(FIRST, LAST)].to_csv(root / "sp500.csv", index=False)
    resources = {
        "files_provider": FilesProvider(path=str(root / "sp500.csv")),
        "market_data": MarketDataResource(providers=["files"]),
        "lake": LakeResource(url=str(root / "lake")),
        "duckdb": DuckDBResource(database=str(root / "catalog.duckdb")),
    }
    tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
    result = dg.materialize(
        [raw_bars_files, validated_bars, *dg.load_asset_checks_from_modules([checks])],
        resources=resources,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}, raw


def test_completeness_names_the_real_gaps_and_not_the_listings(results):
    """Per ticker, the check counts the sessions inside its span that the file lacks or validation quarantined:
    the sessions before KHC's, PYPL's and WRK's listings are not gaps (validation quarantined one bar of WRK's)."""
    evaluations, raw = results
    complete = evaluations["validated_bars_complete"]
    sessions = calendar.sessions(FIRST, LAST)
    rows = raw[raw["date"].between(FIRST, LAST)].assign(date=lambda f: pd.to_datetime(f["date"]))
    span = rows.groupby("Name")["date"].agg(["min", "max"])
    inside = {t: int(((sessions >= lo) & (sessions <= hi)).sum()) for t, (lo, hi) in span.iterrows()}
    file_gaps = {t: n - rows[rows["Name"] == t]["date"].nunique() for t, n in inside.items()}
    table = complete.metadata["tickers_missing_sessions"].value
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^\| (\S+)\s+\|\s+(\d+) \|", table, re.MULTILINE)}
    assert not complete.passed and complete.severity == dg.AssetCheckSeverity.WARN
    assert counts["O"] >= file_gaps["O"] > 0  # the file lacks some of O's sessions
    quarantined = complete.metadata["quarantined_of_them"].value
    assert sum(counts.values()) == complete.metadata["missing_bars"].value <= sum(file_gaps.values()) + quarantined
    for ticker in LISTED_INSIDE:  # only gaps after the listing count (a quarantined bar is one): not ~120 sessions
        assert file_gaps[ticker] <= counts.get(ticker, 0) < 5
    assert complete.description.startswith(f"{len(counts)} ticker(s) lack") and "between 2015-" in complete.description


def test_freshness_of_a_past_window_passes_and_says_why(results):
    fresh = results[0]["validated_bars_fresh"]
    assert fresh.passed and fresh.metadata["historical_run"].value
    assert "a run of past partitions" in fresh.description


def test_jumps_are_named_with_their_day_and_size(results):
    jumps = results[0]["validated_bars_no_unexplained_jumps"]
    if jumps.passed:
        assert jumps.description is None
    else:
        assert "robust sigmas" in jumps.description and " 2015-" in jumps.description


def test_missing_sessions_counts_inside_each_tickers_span():
    sessions = calendar.sessions("2024-03-04", "2024-03-08")
    seen = pd.DataFrame({"date": sessions[[0, 4, 2, 3]], "ticker": ["A", "A", "B", "B"]})
    have = pd.DataFrame({"date": sessions[[0, 1, 4, 2]], "ticker": ["A", "A", "A", "B"]})
    short = checks.missing_sessions(sessions, seen, have)
    assert short.to_dict("records") == [
        {"ticker": "A", "missing": 2, "first": sessions[2], "last": sessions[3]},
        {"ticker": "B", "missing": 1, "first": sessions[3], "last": sessions[3]},
    ]
