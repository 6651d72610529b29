"""Anomaly rules on real defects: exact counts on the S&P 500 file, the AAPL recording and yfinance's repair cases."""

import json

import pandas as pd
import pytest

from stockpred_core.data import anomalies as an
from stockpred_core.data.quality import validate_provider
from stockpred_core.data.schemas import EVENT_COLUMNS


@pytest.fixture(scope="module")
def sp500_checked(shared_data):
    raw = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz", parse_dates=["date"])
    raw = raw.rename(columns={"Name": "ticker"})
    raw = raw.assign(adj_close=raw["close"], provider="files", ingested_at=pd.Timestamp("2024-01-01"))
    return raw, validate_provider(raw, pd.DataFrame(columns=EVENT_COLUMNS), pd.DataFrame())


def test_sp500_file_every_row_accounted_for_and_the_documented_defects_found(sp500_checked):
    raw, checked = sp500_checked
    assert len(checked.valid) + len(checked.quarantined) == len(raw) == 619_040
    assert checked.quarantined["rule"].value_counts().to_dict() == {
        "ohlc": 12,
        "open:not_nullable": 9,
        "high:not_nullable": 2,
    }
    # The unadjusted corporate actions: EBAY's PayPal spin-off re-prices by 2.5x at the open with ordinary volume
    # and is adjusted as a detected split; NI's spin-off and Discovery's C-share dividend trade in heavy volume and
    # are flagged (kept, reported), like 97 other moves beyond 8 robust sigmas.
    assert checked.events[["date", "ticker", "value"]].to_dict("records") == [
        {"date": pd.Timestamp("2015-07-20"), "ticker": "EBAY", "value": 2.5}
    ]
    flagged = set(zip(checked.flags["ticker"], checked.flags["date"].dt.strftime("%Y-%m-%d"), strict=True))
    assert {("NI", "2015-07-02"), ("DISCA", "2014-08-07"), ("DISCK", "2014-08-07")} <= flagged
    assert len(checked.flags) == 100


def test_sp500_missing_sessions_of_dhr_and_o(sp500_checked):
    raw, checked = sp500_checked
    sessions = raw["date"].nunique()
    missing_raw = sessions - raw.groupby("ticker")["date"].nunique()[["DHR", "O"]]
    assert sessions == 1259 and missing_raw.to_dict() == {"DHR": 16, "O": 16}
    # Validation adds the rows it quarantined (DHR 3, O 4 with missing or inconsistent OHLC) to what is missing.
    held = checked.quarantined["ticker"].value_counts()[["DHR", "O"]].to_dict()
    missing_valid = sessions - checked.valid.groupby("ticker")["date"].nunique()[["DHR", "O"]]
    assert held == {"DHR": 3, "O": 4} and missing_valid.to_dict() == {"DHR": 19, "O": 20}


def test_the_four_aapl_splits_are_detected_and_the_2000_crash_is_not(shared_data):
    body = shared_data / "providers" / "alphavantage" / "TickerTrace_vcr_2023"
    series = json.loads((body / "TIME_SERIES_DAILY_AAPL_full_2023-11-10.body.json").read_text())["Time Series (Daily)"]
    bars = pd.DataFrame(series).T.astype(float).set_axis(["open", "high", "low", "close", "volume"], axis=1)
    bars = bars.rename_axis("date").reset_index().assign(date=lambda f: pd.to_datetime(f["date"]), ticker="AAPL")
    splits = an.detect_splits(bars)
    assert splits[["date", "value"]].to_dict("records") == [
        {"date": pd.Timestamp("2000-06-21"), "value": 2.0},
        {"date": pd.Timestamp("2005-02-28"), "value": 2.0},
        {"date": pd.Timestamp("2014-06-09"), "value": 7.0},
        {"date": pd.Timestamp("2020-08-31"), "value": 4.0},
    ]
    jumps = an.unexplained_jumps(bars, splits)
    assert jumps["date"].tolist() == [pd.Timestamp("2000-09-29")]  # the real -52% day, in 22x volume


def load_repair_case(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A yfinance test CSV as canonical bars plus its dividend/split events (dates in the exchange's timezone)."""
    frame = pd.read_csv(path)
    frame = frame.rename(columns={frame.columns[0]: "stamp"})
    dates = pd.to_datetime(frame["stamp"].str[:10])
    ticker = path.name.split("-1")[0]
    bars = pd.DataFrame(
        {
            "date": dates,
            "ticker": ticker,
            "open": frame["Open"],
            "high": frame["High"],
            "low": frame["Low"],
            "close": frame["Close"],
            "volume": frame["Volume"],
        }
    )
    bars = bars.dropna(subset=["open", "high", "low", "close"]).sort_values("date", ignore_index=True)
    events = [(d, ticker, "dividend", v) for d, v in zip(dates, frame["Dividends"], strict=True) if v > 0]
    events += [(d, ticker, "split", v) for d, v in zip(dates, frame["Stock Splits"], strict=True) if v > 0]
    return bars, pd.DataFrame(events, columns=EVENT_COLUMNS[:4]).assign(provider="yahoo")


# (case, rule, findings in the bad download, findings in yfinance's repaired one)
REPAIR_CASES = [
    ("AET-L-1d-100x-error", "unit", 23, 0),
    ("SSW-JO-1d-100x-error", "unit", 29, 0),
    ("ABDP-L-1d-bad-div", "dividend", 2, 0),
    ("ELCO-L-1d-bad-div", "dividend", 5, 0),
    ("PSH-L-1d-bad-div", "dividend", 11, 0),
    ("REL-L-1d-bad-div", "dividend", 6, 0),
    ("TEM-L-1d-bad-div", "dividend", 1, 0),
    ("4063-T-1d-bad-stock-split", "split", 1, 0),
    ("LA-V-1d-bad-stock-split", "split", 1, 0),
    ("MOB-ST-1d-bad-stock-split", "split", 2, 0),
    ("CNE-L-1d-bad-stock-split", "spike", 1, 0),
]


def findings(rule: str, bars: pd.DataFrame, events: pd.DataFrame) -> int:
    return {
        "unit": lambda: len(an.unit_mismatches(bars)),
        "dividend": lambda: len(an.implausible_dividends(bars, events)),
        "split": lambda: len(an.detect_splits(bars, events)),
        "spike": lambda: len(an.spikes(bars)),
    }[rule]()


@pytest.mark.parametrize(("case", "rule", "bad", "fixed"), REPAIR_CASES, ids=[c[0] for c in REPAIR_CASES])
def test_yahoo_price_errors_are_caught_and_the_repaired_data_is_clean(shared_data, case, rule, bad, fixed):
    folder = shared_data / "quality" / "yahoo_price_repair"
    assert findings(rule, *load_repair_case(folder / f"{case}.csv")) == bad
    assert findings(rule, *load_repair_case(folder / f"{case}-fixed.csv")) == fixed


@pytest.mark.parametrize("case", ["CALM", "EWG", "IBE-MC", "KMR-L", "TISG-MI"])
def test_negative_controls_raise_nothing(shared_data, case):
    bars, events = load_repair_case(shared_data / "quality" / "yahoo_price_repair" / f"{case}-1d-no-bad-divs.csv")
    assert [findings(rule, bars, events) for rule in ("unit", "dividend", "split", "spike")] == [0, 0, 0, 0]
