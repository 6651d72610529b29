import numpy as np
import pandas as pd
import pytest

from stockpred_core.data.quality import BarShapeError, split_valid
from stockpred_core.data.simulation import simulate_bars


@pytest.fixture(scope="module")
def sp500(shared_data) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz", parse_dates=["date"]).rename(
        columns={"Name": "ticker"}
    )
    return raw.assign(adj_close=raw["close"], provider="files", ingested_at=pd.Timestamp("2024-01-01"))


def test_every_row_is_validated_or_quarantined_on_the_real_sp500_file(sp500):
    valid, quarantined = split_valid(sp500)
    assert len(valid) + len(quarantined) == len(sp500) == 619_040
    counts = quarantined["rule"].value_counts().to_dict()
    # The file's documented defects: 11 rows missing open/high/low, 12 with open or close outside high-low.
    assert counts == {"ohlc": 12, "open:not_nullable": 9, "high:not_nullable": 2}
    lnt = quarantined[(quarantined["ticker"] == "LNT") & (quarantined["date"] == "2016-05-19")]
    assert lnt["rule"].tolist() == ["ohlc"]
    assert not valid.duplicated(["date", "ticker"]).any()


def test_rules_and_reasons_on_small_input():
    bars = simulate_bars(7, 3, "2024-07-01", "2024-07-05")
    bars.loc[0, "low"] = np.nan
    bars.loc[1, "close"] = -1.0
    holiday = bars.iloc[[2]].assign(date=pd.Timestamp("2024-07-04"))
    later_copy = bars.iloc[[3]].assign(ingested_at=bars["ingested_at"].iloc[3] + pd.Timedelta(hours=1))
    raw = pd.concat([bars, holiday, later_copy], ignore_index=True)
    valid, quarantined = split_valid(raw)
    assert len(valid) + len(quarantined) == len(raw)
    reasons = dict(zip(quarantined["rule"], quarantined["reason"], strict=True))
    assert reasons["low:not_nullable"] == "low failed not_nullable (value nan)"
    assert reasons["close:greater_than(0)"].startswith("close failed greater_than(0)")
    assert reasons["trading_day"] == "2024-07-04 is not an NYSE session"
    assert reasons["duplicate"].startswith("duplicate (date, ticker)")
    kept = valid[(valid["ticker"] == bars.loc[3, "ticker"]) & (valid["date"] == bars.loc[3, "date"])]
    assert kept["ingested_at"].tolist() == [later_copy["ingested_at"].iloc[0]]  # the latest ingestion wins


def test_a_table_that_is_not_bars_is_a_clear_error():
    with pytest.raises(BarShapeError, match="lack the canonical columns"):
        split_valid(pd.DataFrame({"date": [], "ticker": []}))
