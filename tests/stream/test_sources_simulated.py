"""Simulated intraday bars: a session's minutes (and a minute's seconds) aggregate EXACTLY to the simulated daily bar
the batch path ingests, for many tickers and dates; deterministic by seed; a ticker's bars do not depend on the
universe around it; and the 10,000-ticker session generates in seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from stockpred_core.data.simulation import simulate_bars
from stream.sources import SimulatedReplay
from stream.sources.simulated import OHLCV, minute_bars, second_bars, session_bounds_ms

AGGREGATE = {
    "open": lambda a: a[0],
    "high": lambda a: a.max(axis=0),
    "low": lambda a: a.min(axis=0),
    "close": lambda a: a[-1],
    "volume": lambda a: a.sum(axis=0),
}


def assert_aggregates_exactly(columns: dict[str, np.ndarray], parent: dict[str, np.ndarray]) -> None:
    for name in OHLCV:
        assert np.array_equal(AGGREGATE[name](columns[name]), parent[name]), name
    o, h, lo, c, v = (columns[name] for name in OHLCV)
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all() and (lo > 0).all()
    assert (v >= 0).all() and (v == np.round(v)).all()
    assert np.array_equal(o[1:], c[:-1])  # each bar opens at the previous close


@pytest.mark.parametrize("day", ["2013-03-28", "2014-07-03", "2015-11-27", "2016-06-15"])
def test_minutes_aggregate_exactly_to_the_daily_bar(day: str) -> None:
    daily = simulate_bars(11, 300, day, day).sort_values("ticker", ignore_index=True)
    minutes = minute_bars(11, dt.date.fromisoformat(day), daily)
    assert_aggregates_exactly(minutes.columns, {name: daily[name].to_numpy() for name in OHLCV})
    opens, closes = session_bounds_ms(dt.date.fromisoformat(day))
    assert minutes.ts[0] == opens and minutes.ts[-1] + 60_000 == closes
    # 2014-07-03 and 2015-11-27 close at 13:00: 210 minutes, not 390.
    assert len(minutes.ts) == (210 if day in ("2014-07-03", "2015-11-27") else 390)
    assert minutes.tickers == list(daily["ticker"])


def test_seconds_aggregate_exactly_to_their_minute() -> None:
    day = dt.date(2014, 3, 3)
    minutes = minute_bars(5, day, simulate_bars(5, 200, day, day))
    for minute in (0, 1, 200, 389):
        seconds = second_bars(5, day, minutes, minute)
        assert_aggregates_exactly(seconds.columns, {name: minutes.columns[name][minute] for name in OHLCV})
        assert seconds.ts[0] == minutes.ts[minute] and np.all(np.diff(seconds.ts) == 1000)


def test_deterministic_by_seed_and_independent_of_the_universe() -> None:
    day = dt.date(2014, 3, 3)
    daily = simulate_bars(3, 50, day, day)
    a, b = minute_bars(3, day, daily), minute_bars(3, day, daily)
    assert all(np.array_equal(a.columns[n], b.columns[n]) for n in OHLCV)
    other_seed = minute_bars(4, day, daily)
    assert not np.array_equal(a.columns["close"], other_seed.columns["close"])
    alone = minute_bars(3, day, daily[daily["ticker"] == "S00007"])
    assert np.array_equal(alone.columns["close"][:, 0], a.columns["close"][:, 7])


def test_replay_streams_bars_in_time_order_at_both_resolutions() -> None:
    async def run(source) -> list:
        return [batch async for batch in source]

    minutes = asyncio.run(run(SimulatedReplay(1, 20, "2014-03-03")))
    assert len(minutes) == 390 and all(len(batch) == 20 for batch in minutes)
    daily = simulate_bars(1, 20, "2014-03-03", "2014-03-03").set_index("ticker")
    s3 = [bar for batch in minutes for bar in batch if bar.ticker == "S00003"]
    assert (
        s3[0].open,
        max(b.high for b in s3),
        min(b.low for b in s3),
        s3[-1].close,
        sum(b.volume for b in s3),
    ) == tuple(daily.loc["S00003", list(OHLCV)])
    seconds = SimulatedReplay(1, 20, "2014-03-03", tickers=["S00003", "S00011"], interval_s=1).groups()
    first = [next(seconds) for _ in range(120)]
    assert [b[0].end_ms for b in first] == [first[0][0].end_ms + 1000 * i for i in range(120)]
    assert [bar.ticker for bar in first[0]] == ["S00003", "S00011"]


def test_not_a_session_is_refused() -> None:
    with pytest.raises(ValueError, match="not a trading session"):
        minute_bars(1, dt.date(2014, 3, 1), pd.DataFrame(columns=["ticker", *OHLCV]))


@pytest.mark.slow
def test_ten_thousand_tickers_generate_in_seconds() -> None:
    day = dt.date(2014, 3, 3)
    daily = simulate_bars(7, 10_000, day, day)
    began = time.perf_counter()
    minutes = minute_bars(7, day, daily)
    elapsed = time.perf_counter() - began
    print(f"10,000 tickers x 390 minutes: {elapsed:.2f} s")
    assert minutes.columns["close"].shape == (390, 10_000) and elapsed < 10
    daily = daily.sort_values("ticker", ignore_index=True)
    assert_aggregates_exactly(minutes.columns, {name: daily[name].to_numpy() for name in OHLCV})
