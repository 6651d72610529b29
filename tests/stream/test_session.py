"""The running daily bar of a session: regular-session bars make the prices, every bar of the date the volume."""

import datetime as dt

from stream.bars import Bar
from stream.session import RunningBars, SessionClock

DAY = dt.date(2013, 10, 7)  # a Monday: 09:30-16:00 New York = 13:30-20:00 UTC
OPEN_MS = int(dt.datetime(2013, 10, 7, 13, 30, tzinfo=dt.UTC).timestamp() * 1000)
CLOSE_MS = OPEN_MS + int(6.5 * 3600 * 1000)


def bar(offset_min: float, o, h, lo, c, v, ticker="IBM") -> Bar:
    return Bar(ticker, OPEN_MS + int(offset_min * 60_000), 60, o, h, lo, c, v)


def test_prices_from_the_regular_session_volume_from_the_whole_date():
    running = RunningBars(DAY)
    assert not running.add(bar(-300, 180.0, 190.0, 179.0, 185.0, 100))  # pre-market: no running bar yet
    assert running.bars == {}
    assert running.add(bar(0, 181.0, 182.0, 180.5, 181.5, 1_000))
    assert running.add(bar(1, 181.5, 183.0, 181.0, 182.5, 2_000))
    assert running.bars["IBM"] == [181.0, 183.0, 180.5, 182.5, 3_100, OPEN_MS + 2 * 60_000]
    assert running.add(bar(390, 182.5, 199.0, 170.0, 175.0, 500))  # after hours: volume only
    assert running.bars["IBM"][:5] == [181.0, 183.0, 180.5, 182.5, 3_600]
    assert running.bars["IBM"][5] == CLOSE_MS + 60_000


def test_an_early_close_ends_the_prices_at_13_00():
    day = dt.date(2013, 11, 29)  # the day after Thanksgiving: closes at 13:00 New York (18:00 UTC)
    opens = int(dt.datetime(2013, 11, 29, 14, 30, tzinfo=dt.UTC).timestamp() * 1000)
    running = RunningBars(day)
    running.add(Bar("SPY", opens, 60, 180.0, 181.0, 179.5, 180.5, 10))
    running.add(Bar("SPY", opens + 4 * 3600 * 1000 + 60_000, 60, 180.5, 185.0, 180.0, 184.0, 5))  # 13:31
    assert running.bars["SPY"][:5] == [180.0, 181.0, 179.5, 180.5, 15]


def test_a_bar_belongs_to_the_new_york_date_of_its_start():
    clock = SessionClock()
    evening = int(dt.datetime(2014, 1, 7, 0, 30, tzinfo=dt.UTC).timestamp() * 1000)  # 19:30 New York, Jan 6
    assert clock.session_of(evening) == dt.date(2014, 1, 6)
    assert clock.session_of(OPEN_MS) == DAY
