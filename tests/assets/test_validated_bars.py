"""validated_bars as an asset: provider priority with per-ticker fallback, disagreements, quarantine, nothing lost."""

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_assets.ingestion.assets import raw_bars_files, raw_bars_simulated
from stockpred_assets.validation.assets import validated_bars
from stockpred_core.data.quality import validate_provider
from stockpred_core.data.simulation import simulate_market
from stockpred_core.io.lake import Lake
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.providers import FilesProvider, SimulatedProvider

START, END = "2024-03-01", "2024-04-30"


def test_primary_first_fallback_per_ticker_and_disagreements(tmp_path):
    # The secondary source: S00001 one percent off the simulated closes, and X0001, which the simulation lacks.
    sim, _ = simulate_market(7, 3, START, END)
    other = sim[sim["ticker"] == "S00001"].assign(close=lambda f: f["close"] * 1.01, high=lambda f: f["high"] * 1.01)
    extra = sim[sim["ticker"] == "S00002"].assign(ticker="X0001")
    pd.concat([other, extra])[["date", "ticker", "open", "high", "low", "close", "volume"]].to_csv(
        tmp_path / "bars.csv", index=False
    )
    resources = {
        "simulated_provider": SimulatedProvider(universe_size=3),
        "files_provider": FilesProvider(path=str(tmp_path / "bars.csv")),
        "market_data": MarketDataResource(providers=["simulated", "files"], disagreement_bps=50),
        "lake": LakeResource(url=str(tmp_path / "lake")),
        "duckdb": DuckDBResource(database=str(tmp_path / "catalog.duckdb")),
    }
    tags = {"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": END}
    result = dg.materialize(
        [raw_bars_simulated, raw_bars_files, validated_bars],
        resources=resources,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("validated_bars")[-1].metadata.items()}
    sessions = sim["date"].nunique()
    assert meta["rows_in"] == 3 * sessions + 2 * sessions and meta["rows_quarantined"] == 0
    assert meta["rows_in"] == meta["rows_valid"] + meta["rows_quarantined"]  # nothing disappears
    assert meta["rows_superseded"] == sessions  # files' S00001 rows: the simulated (primary) ones win
    assert meta["rows_by_provider"] == {"simulated": 3 * sessions, "files": sessions}
    assert meta["disagreements"] == sessions
    lake = Lake(str(tmp_path / "lake"))
    bars = lake.read_range("validated", "bars", START, END)
    assert bars.groupby("ticker")["provider"].first().to_dict() == {
        "S00000": "simulated",
        "S00001": "simulated",
        "S00002": "simulated",
        "X0001": "files",
    }
    diffs = lake.read_range("validated", "disagreements", START, END)
    assert set(diffs["ticker"]) == {"S00001"} and np.allclose(diffs["diff_bps"], 100.0)


def test_injected_defects_are_quarantined_and_every_row_accounted_for():
    bars, events = simulate_market(7, 4, "2024-01-02", "2024-06-28")
    bars = bars.sort_values(["ticker", "date"], ignore_index=True)
    a = bars.index[bars["ticker"] == "S00000"]
    b = bars.index[bars["ticker"] == "S00001"]
    c = bars.index[bars["ticker"] == "S00002"]
    prices = ["open", "high", "low", "close", "adj_close"]
    bars.loc[a[60], prices] *= 3.0  # a bad print that reverts next session
    bars.loc[b[40:], prices] /= 100.0  # a feed switching from dollars to cents
    bars.loc[c[80:90], ["open", "high", "low", "close", "adj_close"]] = bars.loc[c[79], prices].to_numpy()
    checked = validate_provider(bars, events, pd.DataFrame())
    assert len(checked.valid) + len(checked.quarantined) == len(bars)
    rules = checked.quarantined.groupby("rule")["ticker"].agg(lambda t: (t.iloc[0], len(t))).to_dict()
    assert rules == {"spike": ("S00000", 1), "unit_mismatch": ("S00001", len(b)), "stale": ("S00002", 7)}
    assert set(checked.events["provider"]) == {"simulated"}  # reported events kept, nothing spuriously detected


DUPLICATED = """date,open,high,low,close,volume,Name
2024-03-04,10,11,9,10.5,100,AAA
2024-03-05,10,11,9,10.6,100,AAA
2024-03-06,10,11,9,10.7,100,AAA
2024-03-06,31,32,30,31.0,100,AAA
2024-03-07,10,11,9,10.8,100,AAA
2024-03-08,10,11,9,10.9,100,AAA
"""


def test_a_duplicated_bar_with_different_values_keeps_the_one_agreeing_with_its_neighbours(tmp_path):
    (tmp_path / "bars.csv").write_text(DUPLICATED)
    resources = {
        "files_provider": FilesProvider(path=str(tmp_path / "bars.csv")),
        "market_data": MarketDataResource(providers=["files"]),
        "lake": LakeResource(url=str(tmp_path / "lake")),
        "duckdb": DuckDBResource(database=str(tmp_path / "catalog.duckdb")),
    }
    tags = {"dagster/asset_partition_range_start": "2024-03-04", "dagster/asset_partition_range_end": "2024-03-08"}
    result = dg.materialize([raw_bars_files, validated_bars], resources=resources, tags=tags)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("validated_bars")[-1].metadata.items()}
    assert (meta["rows_in"], meta["rows_valid"], meta["rows_quarantined"]) == (6, 5, 1)
    lake = Lake(str(tmp_path / "lake"))
    assert lake.read_range("validated", "bars", "2024-03-06", "2024-03-06")["close"].tolist() == [10.7]
    quarantined = lake.read_range("validated", "quarantine", "2024-03-04", "2024-03-08")
    assert quarantined[["close", "rule"]].values.tolist() == [[31.0, "duplicate"]]
    assert quarantined["reason"].iloc[0] == (
        "duplicate (date, ticker) with different values: the bar closing at 10.7, "
        "nearest the neighbouring sessions (10.7), was kept"
    )


def test_the_other_providers_settle_a_duplicate_before_the_neighbours_do():
    bars = simulate_market(7, 1, "2024-07-01", "2024-07-12")[0]
    moved = bars.iloc[[3]].assign(open=lambda f: f["open"] * 1.5, high=lambda f: f["high"] * 1.5)
    moved = moved.assign(close=lambda f: f["close"] * 1.5, low=lambda f: f["low"] * 1.5, adj_close=lambda f: f["close"])
    raw = pd.concat([bars, moved], ignore_index=True)
    other = moved[["date", "ticker", "close"]]  # the other providers saw the moved bar
    checked = validate_provider(raw, pd.DataFrame(), pd.DataFrame(), reference=other)
    dropped = checked.quarantined[checked.quarantined["rule"] == "duplicate"]
    assert dropped["close"].tolist() == [bars["close"].iloc[3]]
    assert "nearest the other providers" in dropped["reason"].iloc[0]
    alone = validate_provider(raw, pd.DataFrame(), pd.DataFrame())
    assert alone.quarantined.loc[alone.quarantined["rule"] == "duplicate", "close"].tolist() == moved["close"].tolist()
