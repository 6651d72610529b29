"""Replay sources over the real recorded bars: Lean minute and second zips merged across tickers, the Alpha Vantage
intraday captures, exact prices, time order, and pacing by the bars' own timestamps."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from support import SHARED_DATA

from stream.bars import Bar
from stream.sources import AlphaVantageReplay, LeanReplay, paced
from stream.sources.lean import deci_cents_to_price, midnight_ms, read_trade_zip

LEAN = SHARED_DATA / "intraday" / "lean"
AV = SHARED_DATA / "providers" / "alphavantage"
OCT7 = dt.date(2013, 10, 7)

pytestmark = pytest.mark.skipif(not LEAN.is_dir(), reason=f"reference data not found at {SHARED_DATA}")


def collect(source) -> list[list[Bar]]:
    async def run() -> list[list[Bar]]:
        return [batch async for batch in source]

    return asyncio.run(run())


def test_prices_are_the_nearest_float_to_the_exact_decimal() -> None:
    assert deci_cents_to_price(np.array([1681234]))[0] == 168.1234
    values = np.concatenate(
        [read_trade_zip(LEAN / "minute" / "spy" / "20131007_trade.zip")["open"].to_numpy(), np.arange(1, 200_001)]
    )
    exact = [float(Decimal(int(v)) / Decimal(10_000)) for v in values]
    assert deci_cents_to_price(values).tolist() == exact
    # The tempting multiplication is not exact: it is off for some of these.
    assert (values * 0.0001).tolist() != exact


def test_lean_minute_session_merged_across_tickers_in_time_order() -> None:
    tickers = ["SPY", "AIG", "BAC", "IBM"]
    batches = collect(LeanReplay(LEAN, OCT7, tickers))
    bars = [bar for batch in batches for bar in batch]
    raw = {t: read_trade_zip(LEAN / "minute" / t.lower() / "20131007_trade.zip") for t in tickers}
    assert len(bars) == sum(len(frame) for frame in raw.values())
    ends = [batch[0].end_ms for batch in batches]
    assert ends == sorted(set(ends))  # strictly increasing: one batch per moment
    assert all(len({b.end_ms for b in batch}) == 1 for batch in batches)
    rank = {t: i for i, t in enumerate(tickers)}  # within a moment, the tickers in the order given
    assert all([rank[b.ticker] for b in batch] == sorted(rank[b.ticker] for b in batch) for batch in batches)
    assert any(len(batch) == 4 for batch in batches)
    # SPY's first bar: 04:00 New York (EDT, UTC-4) = 08:00 UTC, 167.41 / 167.41 / 167.25 / 167.27, 3,197 shares.
    spy = [b for b in bars if b.ticker == "SPY"]
    assert spy[0] == Bar("SPY", 1381132800000, 60, 167.41, 167.41, 167.25, 167.27, 3197.0)
    assert spy[0].ts == int(dt.datetime(2013, 10, 7, 8, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert [b.close for b in spy] == (raw["SPY"]["close"] / 10_000).tolist()


def test_lean_regular_hours_and_second_resolution() -> None:
    source = LeanReplay(
        LEAN, "2013-10-07", ["SPY", "IBM"], resolution="second", start=dt.time(9, 30), end=dt.time(16, 0)
    )
    bars = [bar for batch in collect(source) for bar in batch]
    open_ms, close_ms = midnight_ms(OCT7) + 34_200_000, midnight_ms(OCT7) + 57_600_000
    assert min(b.ts for b in bars) == open_ms and max(b.ts for b in bars) < close_ms
    assert {b.interval_s for b in bars} == {1} and {b.ticker for b in bars} == {"SPY", "IBM"}
    spy = read_trade_zip(LEAN / "second" / "spy" / "20131007_trade.zip")
    assert len(spy) == 16_675  # SOURCE.txt's 16,674 is `wc -l`: the CSV has no final newline
    in_hours = spy[(spy["ms"] >= 34_200_000) & (spy["ms"] < 57_600_000)]
    assert sum(b.ticker == "SPY" for b in bars) == len(in_hours)
    assert sum(b.volume for b in bars if b.ticker == "SPY") == in_hours["volume"].sum()


def test_midnight_follows_daylight_saving() -> None:
    assert midnight_ms(dt.date(2013, 10, 7)) == 1381118400000  # EDT: 04:00 UTC
    assert midnight_ms(dt.date(2013, 12, 2)) == 1385960400000  # EST: 05:00 UTC


def test_alphavantage_capture_bars_start_one_interval_before_their_label() -> None:
    path = AV / "kresli_stock-point_2019" / "stock-time-series-intraday.body.json"
    batches = collect(AlphaVantageReplay([path]))
    bars = [bar for batch in batches for bar in batch]
    assert len(bars) == 100 and {b.interval_s for b in bars} == {300} and {b.ticker for b in bars} == {"MSFT"}
    # The last label, "2019-08-02 16:00:00" US/Eastern (EDT) is the close: the bar started at 15:55 = 19:55 UTC.
    assert bars[-1].ts == int(dt.datetime(2019, 8, 2, 19, 55, tzinfo=dt.UTC).timestamp() * 1000)
    assert bars[-1].end_ms == int(dt.datetime(2019, 8, 2, 20, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert [b.ts for b in bars] == sorted(b.ts for b in bars)


def test_alphavantage_merges_two_captures_and_keeps_exact_values() -> None:
    msft_1min = AV / "RomelTorres_alpha_vantage_mocks" / "mock_time_series.json"
    bars = [bar for batch in collect(AlphaVantageReplay([msft_1min])) for bar in batch]
    # "2017-12-18 13:17:00": open "86.8101", high "86.8200", low "86.7900", close "86.8000", volume "31172".
    assert bars[0] == Bar("MSFT", 1513621020000 - 60_000, 60, 86.8101, 86.82, 86.79, 86.8, 31172.0)


def test_alphavantage_error_payload_is_refused(tmp_path: Path) -> None:
    note = AV / "error_payloads_verbatim" / "rate_limit_information_25day.json"
    with pytest.raises(ValueError, match="Information"):
        collect(AlphaVantageReplay([note]))


def test_pacing_follows_the_bars_timestamps() -> None:
    """Five SPY minutes with a gap replayed at 3,000x: each batch leaves at (its end - first end) / 3000 s."""
    source = LeanReplay(LEAN, OCT7, ["SPY"], start=dt.time(9, 30), end=dt.time(9, 35), speed=3000)
    began, seen = time.monotonic(), []

    async def run() -> None:
        async for batch in source:
            seen.append((time.monotonic() - began, batch[0].end_ms))

    asyncio.run(run())
    assert len(seen) == 5
    first_end = seen[0][1]
    for at, end in seen:
        due = (end - first_end) / 1000 / 3000
        assert due <= at < due + 0.05
    assert seen[-1][0] >= 0.08  # 4 minutes at 3000x


def test_unpaced_replay_never_sleeps_and_a_paced_one_sleeps_the_gaps() -> None:
    bars = [[Bar("SPY", t * 1000, 60, 1.0, 1.0, 1.0, 1.0, 1.0)] for t in (0, 60, 180)]  # a missing minute at 120
    slept: list[float] = []
    now = [100.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def run(speed: float | None) -> list[list[Bar]]:
        return [b async for b in paced(bars, speed, clock=lambda: now[0], sleep=sleep)]

    assert asyncio.run(run(None)) == bars and asyncio.run(run(0)) == bars and slept == []
    assert asyncio.run(run(1.0)) == bars and slept == [60.0, 120.0]
    slept.clear()
    assert asyncio.run(run(60.0)) == bars and slept == [1.0, 2.0]
