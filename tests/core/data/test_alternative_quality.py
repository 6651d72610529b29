"""Validation of the raw alternative tables: each rule quarantines with its reason and the row's original values,
duplicates keep the first copy, nothing valid is lost and nothing invalid passes."""

import json

import pandas as pd
import pytest

from stockpred_core.data import alternative as alt
from stockpred_core.data.alternative_quality import AltShapeError, keep_quarantine, validate_alt

FETCHED = pd.Timestamp("2024-01-01 12:00")


def news(rows: list[dict]) -> pd.DataFrame:
    base = {"headline": "h", "body": None, "source": "wire", "url": None, "vendor_sentiment": None,
            "provider": "files", "ingested_at": FETCHED, "request_id": "r1"}  # fmt: skip
    frame = pd.DataFrame([{**base, **row} for row in rows])
    frame["date"] = alt.session_for(alt.to_utc_naive(frame["public_at"]))
    return frame.reindex(columns=alt.NEWS_COLUMNS)


def test_valid_rows_pass_typed_and_sorted():
    frame = news(
        [
            {"ticker": "MSFT", "item_id": "2", "public_at": "2014-01-03T14:00:00Z", "vendor_sentiment": "0.5"},
            {"ticker": "AAPL", "item_id": "1", "public_at": "2014-01-02 20:59:59", "vendor_sentiment": -0.25},
        ]
    )
    checked = validate_alt("news", frame, "2014-01-02", "2014-01-31")
    assert checked.quarantined.empty and checked.duplicates == 0
    assert checked.valid["item_id"].tolist() == ["1", "2"]  # by date: 20:59 UTC is 15:59 New York, that session
    assert checked.valid["date"].tolist() == [pd.Timestamp("2014-01-02"), pd.Timestamp("2014-01-03")]
    assert checked.valid["vendor_sentiment"].tolist() == [-0.25, 0.5]
    assert checked.valid["public_at"].dtype == "datetime64[ns]"


def test_each_rule_quarantines_with_its_reason_and_the_original_values():
    frame = news(
        [
            {"ticker": "AAPL", "item_id": "ok", "public_at": "2014-01-06 15:00"},
            {"ticker": "AAPL", "item_id": "type", "public_at": "2014-01-06 15:00", "vendor_sentiment": "great"},
            {"ticker": "AAPL", "item_id": "clock", "public_at": "not a time"},
            {"ticker": None, "item_id": "required", "public_at": "2014-01-06 15:00"},
            {"ticker": "AAPL", "item_id": "range", "public_at": "2014-01-06 15:00", "vendor_sentiment": 1.5},
            {"ticker": "AAPL", "item_id": "future", "public_at": "2024-01-02 15:00"},
            {"ticker": "AAPL", "item_id": "session", "public_at": "2014-01-06 21:00"},  # 16:00 New York: next day
            {"ticker": "AAPL", "item_id": "window", "public_at": "2014-02-03 15:00"},
        ]
    )
    frame.loc[frame["item_id"] == "session", "date"] = pd.Timestamp("2014-01-06")
    checked = validate_alt("news", frame, "2014-01-02", "2014-01-31")
    assert checked.valid["item_id"].tolist() == ["ok"]
    got = checked.quarantined.set_index("item_id")
    assert got["rule"].to_dict() == {
        "type": "type", "clock": "type", "required": "required", "range": "range", "future": "future",
        "session": "session", "window": "window",
    }  # fmt: skip
    assert got.loc["type", "reason"] == "vendor_sentiment: 'great' is not a number"
    assert got.loc["clock", "reason"] == "public_at: 'not a time' is not a timestamp"
    assert got.loc["required", "reason"] == "ticker is missing"
    assert got.loc["range", "reason"] == "vendor_sentiment 1.5 is outside [-1, 1]"
    assert "after its ingestion" in got.loc["future", "reason"]
    assert got.loc["session", "reason"] == (
        "dated 2014-01-06 but public at 2014-01-06 21:00:00 UTC first counts for 2014-01-07"
    )
    assert got.loc["window", "reason"] == "dated 2014-02-03: outside the window 2014-01-02..2014-01-31"
    assert json.loads(got.loc["type", "raw"])["vendor_sentiment"] == "great"  # what the source said
    assert len(checked.valid) + len(checked.quarantined) == len(frame)


def test_duplicates_keep_the_first_copy_and_are_counted():
    frame = news(
        [
            {"ticker": "AAPL", "item_id": "1", "public_at": "2014-01-06 15:00", "headline": "first"},
            {"ticker": "AAPL", "item_id": "1", "public_at": "2014-01-06 15:00", "headline": "second"},
            {"ticker": "MSFT", "item_id": "1", "public_at": "2014-01-06 15:00"},  # another ticker: another row
        ]
    )
    checked = validate_alt("news", frame, "2014-01-02", "2014-01-31")
    assert checked.duplicates == 1 and checked.by_rule() == {"duplicate": 1}
    assert checked.valid[["ticker", "headline"]].values.tolist() == [["AAPL", "first"], ["MSFT", "h"]]
    assert checked.quarantined["reason"].iloc[0] == (
        "duplicate of (AAPL, 1) by ticker, item_id: the first copy was kept"
    )


def test_a_broken_row_is_not_a_duplicate_of_the_good_copy():
    frame = news(
        [
            {"ticker": "AAPL", "item_id": "1", "public_at": "2014-01-06 15:00", "vendor_sentiment": "x"},
            {"ticker": "AAPL", "item_id": "1", "public_at": "2014-01-06 15:00", "vendor_sentiment": 0.1},
        ]
    )
    checked = validate_alt("news", frame, "2014-01-02", "2014-01-31")
    assert checked.valid["vendor_sentiment"].tolist() == [0.1] and checked.by_rule() == {"type": 1}


def test_macro_values_public_before_their_period_and_insider_booleans():
    public = pd.Series(["2014-01-21 13:30", "2013-12-15 13:30"])
    macro = pd.DataFrame(
        {
            "series": "CPIAUCSL",
            "observed_on": ["2013-12-01", "2014-01-01"],
            "value": [234.7, 235.2],
            "public_at": public,
            "date": alt.session_for(pd.to_datetime(public)),
            "provider": "fred_files",
            "ingested_at": FETCHED,
            "request_id": "r",
        }
    )
    checked = validate_alt("macro", macro, "2013-12-02", "2014-01-31")
    assert checked.valid["observed_on"].tolist() == [pd.Timestamp("2013-12-01")]
    assert checked.quarantined["reason"].tolist() == ["published before the period it observes"]

    public = pd.Series(["2014-01-06 22:00"] * 3)
    insider = pd.DataFrame(
        {
            "ticker": "TSLA",
            "cik": "1318605",
            "accession": "a1",
            "line": [1, 2, 3],
            "public_at": public,
            "date": alt.session_for(pd.to_datetime(public)),
            "insider": "Musk",
            "transaction_date": "2014-01-03",
            "code": ["S", "P", "S"],
            "acquired": [False, "A", "maybe"],
            "shares": [100, 50, -3],
            "price": 150.0,
            "provider": "sec_files",
            "ingested_at": FETCHED,
            "request_id": "r",
        }
    )
    checked = validate_alt("insider", insider, "2014-01-02", "2014-01-31")
    assert checked.valid.set_index("code")["acquired"].to_dict() == {"S": False, "P": True}
    assert checked.quarantined["reason"].tolist() == ["acquired: 'maybe' is not true or false"]


def test_a_table_without_its_columns_is_refused_and_an_empty_one_keeps_its_types():
    with pytest.raises(AltShapeError, match=r"lacks column\(s\) \['item_id'\]"):
        validate_alt("news", news([{"ticker": "A", "item_id": "1", "public_at": "2014-01-06"}]).drop(columns="item_id"),
                     "2014-01-02", "2014-01-03")  # fmt: skip
    with pytest.raises(AltShapeError, match="unknown table kind"):
        validate_alt("weather", pd.DataFrame(), "2014-01-02", "2014-01-03")
    empty = validate_alt("social", alt.empty("social"), "2014-01-02", "2014-01-03")
    assert empty.valid.empty and empty.valid["date"].dtype == "datetime64[ns]"
    assert list(empty.valid.columns) == alt.SOCIAL_COLUMNS


def test_the_quarantine_keeps_each_source_row_once_across_runs():
    frame = news([{"ticker": "AAPL", "item_id": "1", "public_at": "2014-01-06 15:00", "vendor_sentiment": 9}])
    first = validate_alt("news", frame, "2014-01-02", "2014-01-31").quarantined
    rerun = validate_alt("news", frame.assign(ingested_at=FETCHED + pd.Timedelta(days=1), request_id="r2"),
                         "2014-01-02", "2014-01-31").quarantined  # fmt: skip
    kept = keep_quarantine(first, rerun)
    assert len(kept) == 1 and kept["request_id"].iloc[0] == "r1"  # the same source row, quarantined once
    other = validate_alt("news", frame.assign(item_id="2"), "2014-01-02", "2014-01-31").quarantined
    assert len(keep_quarantine(kept, other)) == 2
