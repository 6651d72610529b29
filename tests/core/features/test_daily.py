"""The daily increment (`features/daily.py`) against the batch: each session's rows, computed from the state carried
over from the session before (saved and loaded every day, as the `features` asset does), equal `compute_features`
on that session's look-back, for every model input and price level (1e-9), with NaN in the same places.

Simulated market (dividends and a split inside the sessions, so some tickers are rebuilt from their re-adjusted
history), a ticker listed during the sessions, a ticker that misses days, a dividend recorded late, sectors, the
equal-weight market (every ticker's state feeds it) and, in another test, a configured index and VIX."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.data.simulation import simulate_market, ticker_sector
from stockpred_core.features.batch import LOOKBACK_SESSIONS, MarketContext, compute_features
from stockpred_core.features.catalog import MODEL_INPUTS
from stockpred_core.features.daily import DailyState, changed_tickers, context_fingerprint, increment

SESSIONS = calendar.sessions("2018-05-01", "2018-06-29")  # 43 sessions after ~2 years of history
LEVELS = ["close", "adj_close", "sma_20", "ema_26", "bb_upper", "atr_14"]  # raw columns, adjusted relative to D


@pytest.fixture(scope="module")
def market():
    bars, events = simulate_market(11, 40, "2016-01-04", SESSIONS[-1])
    tickers = sorted(bars["ticker"].unique())
    late, gappy = tickers[0], tickers[1]
    bars = bars[~((bars["ticker"] == late) & (bars["date"] < SESSIONS[10]))]  # listed during the sessions
    gaps = bars["date"].isin(SESSIONS[[3, 4, 20]]) | bars["date"].isin(calendar.sessions("2018-01-02", "2018-01-20"))
    bars = bars[~((bars["ticker"] == gappy) & gaps)].reset_index(drop=True)
    # a dividend the day after its ticker missed a session: no previous close, so no adjustment (as in the batch)
    dividend = events[(events["kind"] == "dividend") & events["date"].isin(SESSIONS[6:])].iloc[0]
    before = SESSIONS[SESSIONS.get_loc(dividend["date"]) - 1]
    bars = bars[~((bars["ticker"] == dividend["ticker"]) & (bars["date"] == before))].reset_index(drop=True)
    inside = events[events["date"].isin(SESSIONS)]
    assert (inside["kind"] == "dividend").sum() >= 3 and len(inside["ticker"].unique()) >= 3
    return bars, events


def reference(bars, events, context, day) -> pd.DataFrame:
    """What the batch `features` asset computes for `day` alone: the look-back's bars adjusted relative to it."""
    window = bars[bars["date"].between(calendar.lookback_start(day, LOOKBACK_SESSIONS), day)]
    table = compute_features(adjust(window, events[events["date"] <= day]), context, since=day)
    return table.set_index("ticker").sort_index()


def run(bars, events, context, known_at=None):
    """Every session of SESSIONS through `increment`, the state saved and loaded in between; yields (day, rows,
    expected rows, report)."""

    def read(start, end, tickers):
        rows = bars[bars["date"].between(start, end)]
        return rows if tickers is None else rows[rows["ticker"].isin(tickers)]

    state = None
    for day in SESSIONS:
        known = events[events["date"] <= day] if known_at is None else known_at(day)
        rows, state, report = increment(state, day, read, known, context)
        state = DailyState.loads(state.dumps(), context)
        yield day, rows.set_index("ticker"), reference(bars, events[events["date"] <= day], context, day), report


def assert_same(day, got, expected):
    assert list(got.index) == list(expected.index), day
    for name in [*MODEL_INPUTS, *LEVELS]:
        a, b = got[name].to_numpy(dtype=float), expected[name].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{day.date()} {name}")
        scale = np.maximum(1.0, np.abs(b)) if name in LEVELS else 1.0
        np.testing.assert_array_less(np.nan_to_num(np.abs(a - b) / scale), 1e-9, err_msg=f"{day.date()} {name}")


def test_each_session_from_the_carried_state_equals_the_batch(market):
    bars, events = market
    context = MarketContext(sectors={t: ticker_sector(t) for t in bars["ticker"].unique()})
    reports = []
    for day, got, expected, report in run(bars, events, context):
        assert_same(day, got, expected)
        reports.append((day, report))
    assert not reports[0][1]["carried"]  # the first session starts from the look-back
    assert all(report["carried"] for _, report in reports[1:])
    rebuilt = {day: report["rebuilt"] for day, report in reports[1:] if report["rebuilt"]}
    on_day = events[events["date"].isin(SESSIONS[1:])].groupby("date")["ticker"].apply(sorted).to_dict()
    assert rebuilt == on_day  # exactly the tickers with an event that day


def index_context(shared_data) -> MarketContext:
    gspc = pd.read_csv(shared_data / "market" / "GSPC.csv", parse_dates=["Date"]).set_index("Date")["Adj Close"]
    vix = pd.read_csv(shared_data / "market" / "VIX_History.csv", parse_dates=["DATE"]).set_index("DATE")["CLOSE"]
    return MarketContext(index_close=gspc, vix=vix)


@pytest.mark.parametrize("configured_index", [False, True])
def test_a_late_event_is_taken_in_when_it_is_learned(market, shared_data, configured_index):
    """With a configured index only the ticker is rebuilt; with the equal-weight market its past returns are part
    of the market's, which every ticker's beta reads: the state starts over from the look-back."""
    bars, events = market
    context = index_context(shared_data) if configured_index else MarketContext()
    dividend = events[(events["kind"] == "dividend") & events["date"].between("2018-03-01", SESSIONS[5])].iloc[0]
    learned = SESSIONS[8]

    def known_at(day):
        known = events[events["date"] <= day]
        return known if day >= learned else known.drop(index=dividend.name)

    reports = {}
    for day, got, _, report in run(bars, events, context, known_at):
        reports[day] = report
        if day >= learned:  # from then on the rows are those of a batch that knows the dividend
            assert_same(day, got, reference(bars, known_at(day), context, day))
    if configured_index:
        assert reports[learned]["carried"] and dividend["ticker"] in reports[learned]["rebuilt"]
    else:
        assert not reports[learned]["carried"]
    assert all(reports[day]["carried"] for day in SESSIONS[SESSIONS > learned])


def test_with_a_configured_index_and_vix(market, shared_data):
    bars, events = market
    context = index_context(shared_data)
    for day, got, expected, _ in run(bars, events, context):
        assert_same(day, got, expected)


def test_a_state_is_used_only_with_the_context_it_was_built_with(market):
    bars, _ = market
    day = SESSIONS[-1]
    plain = MarketContext()
    index = MarketContext(index_close=bars.groupby("date")["close"].mean())
    assert context_fingerprint(plain, day) != context_fingerprint(index, day)
    corrected = index.index_close.copy()
    corrected.iloc[-5] *= 1.01
    assert context_fingerprint(index, day) != context_fingerprint(MarketContext(index_close=corrected), day)
    later = pd.concat([index.index_close, pd.Series([1.0], index=[day + pd.Timedelta(days=3)])])
    assert context_fingerprint(index, day) == context_fingerprint(MarketContext(index_close=later), day)


def test_changed_tickers_compares_the_look_back_only():
    events = pd.DataFrame(
        {
            "date": pd.to_datetime(["2018-01-05", "2018-03-01", "2018-03-02"]),
            "ticker": ["A", "B", "C"],
            "kind": ["dividend", "split", "dividend"],
            "value": [0.5, 2.0, 0.1],
            "provider": "x",
        }
    )
    after = pd.Timestamp("2018-02-01")
    assert changed_tickers(events, events, after) == []
    assert changed_tickers(events.iloc[1:], events, after) == []  # A's event is before the look-back
    assert changed_tickers(events.iloc[:2], events, after) == ["C"]  # learned
    corrected = events.assign(value=[0.5, 2.0, 0.2])
    assert changed_tickers(events, corrected, after) == ["C"]


def test_a_state_saved_with_another_context_is_rebuilt_not_used(market):
    bars, events = market
    context = MarketContext()
    day, after = SESSIONS[-2], SESSIONS[-1]

    def read(start, end, tickers):
        rows = bars[bars["date"].between(start, end)]
        return rows if tickers is None else rows[rows["ticker"].isin(tickers)]

    _, state, _ = increment(None, day, read, events[events["date"] <= day], context)
    index = MarketContext(index_close=bars.groupby("date")["close"].mean())
    rows, _, report = increment(state, after, read, events[events["date"] <= after], index)
    assert not report["carried"]
    assert_same(after, rows.set_index("ticker"), reference(bars, events[events["date"] <= after], index, after))
