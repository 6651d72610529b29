"""Simulated intraday bars consistent with the simulated daily market (`stockpred_core.data.simulation`).

Each day's bar of each ticker is split into the session's 1-minute bars, and each minute (for 1-second bars) into 60
seconds, by one rule that keeps the aggregate EXACT: the first open and the last close are the parent's own floats,
every price lies in [low, high] and the high and the low are each pinned, as the parent's floats, in the sub-bar
where the path comes nearest; volumes are integer parts of the parent's integer volume (cumulative rounding with the
last forced to the total). The path is a Brownian bridge from open to close in log price, shrunk per ticker to fit the
range. Noise is counter-based (a splitmix64 hash of seed, ticker, day, step): deterministic by seed, the same for a
ticker whatever the universe around it, vectorized over tickers x steps with no generator per ticker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.data.simulation import simulate_bars, simulated_tickers
from stream.bars import Bar
from stream.sources.base import ReplaySource

OHLCV = ("open", "high", "low", "close", "volume")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 arrays (arithmetic wraps mod 2**64)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _normals(seed: int, ids: np.ndarray, day: int, steps: np.ndarray, streams: int) -> np.ndarray:
    """Standard normals of shape (streams, len(steps), len(ids)), a pure function of (seed, id, day, step, stream)."""
    base = _mix(np.array([seed, day], dtype=np.uint64) * _GOLDEN).sum(dtype=np.uint64)
    per_ticker = _mix(base + ids.astype(np.uint64) * _GOLDEN)
    keys = _mix(per_ticker[None, :] + (steps.astype(np.uint64)[:, None] + np.uint64(1)) * _M1)
    out = np.empty((streams, len(steps), len(ids)))
    for s in range(streams):
        pair = [_mix(keys + np.uint64((2 * s + k) * int(_M2) % 2**64)) for k in (1, 2)]
        u1, u2 = (((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53 for h in pair)
        out[s] = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller
    return out


def split_bars(parent: dict[str, np.ndarray], noise: np.ndarray, volume_shape: np.ndarray) -> dict[str, np.ndarray]:
    """Split N parent bars (arrays (N,)) into n sub-bars each (arrays (n, N)) that aggregate to the parents exactly.

    `noise`: normals (4, n, N) for the path, the upper and lower wicks and the volume; `volume_shape` (n,): relative
    volume by step."""
    o, h, lo, c, v = (parent[name] for name in OHLCV)
    n, count = noise.shape[1:]
    log_h, log_l = np.log(h), np.log(lo)
    frac = (np.arange(1, n + 1) / n)[:, None]
    line = np.log(o) + frac * (np.log(c) - np.log(o))
    walk = np.cumsum(noise[0], axis=0)
    sigma = (log_h - log_l) / 2.0 / np.sqrt(n)
    dev = sigma * (walk - frac * walk[-1])  # a bridge: 0 at the close
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(dev > 0, (log_h - line) / dev, np.where(dev < 0, (line - log_l) / -dev, np.inf))
    shrink = np.minimum(1.0, room.min(axis=0))
    close = np.clip(np.exp(line + shrink * dev), lo, h)
    close[-1] = c
    open_ = np.vstack([o[None, :], close[:-1]])
    high = np.minimum(np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(noise[1])), h)
    low = np.maximum(np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(noise[2])), lo)
    cols = np.arange(count)
    high[high.argmax(axis=0), cols] = h
    low[low.argmin(axis=0), cols] = lo
    weights = volume_shape[:, None] * np.exp(0.5 * noise[3])
    cumulative = np.minimum(np.round(v * (np.cumsum(weights, axis=0) / weights.sum(axis=0))), v)
    cumulative[-1] = v
    volume = np.diff(cumulative, axis=0, prepend=0.0)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


@lru_cache(maxsize=1)
def _exchange() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(calendar.EXCHANGE, start=calendar.FIRST_SESSION)


def session_bounds_ms(day: dt.date) -> tuple[int, int]:
    """The regular session's open and close (epoch ms UTC), early closes included."""
    session = pd.Timestamp(day)
    if not calendar.is_session(session):
        raise ValueError(f"{day} is not a trading session")
    cal = _exchange()
    return (int(cal.session_open(session).value // 1_000_000), int(cal.session_close(session).value // 1_000_000))


@dataclass(frozen=True)
class IntradayBars:
    """One session's bars on a grid: `ts` (steps,) bar starts in epoch ms, each column (steps, tickers)."""

    tickers: list[str]
    ts: np.ndarray
    interval_s: int
    columns: dict[str, np.ndarray]

    def bars_at(self, step: int) -> list[Bar]:
        """The bars of every ticker at one step, as the stream carries them."""
        values = [self.columns[name][step].tolist() for name in OHLCV]
        stamp = int(self.ts[step])
        return [Bar(t, stamp, self.interval_s, *row) for t, *row in zip(self.tickers, *values, strict=True)]


def minute_bars(seed: int, day: dt.date, daily: pd.DataFrame) -> IntradayBars:
    """The session's 1-minute bars of the tickers in `daily` (one daily bar per ticker for `day`)."""
    daily = daily.sort_values("ticker", ignore_index=True)
    opens, closes = session_bounds_ms(day)
    steps = (closes - opens) // 60_000
    ids = daily["ticker"].str[1:].astype(np.int64).to_numpy()
    noise = _normals(seed, ids, day.toordinal(), np.arange(steps), 4)
    u = np.linspace(-1.0, 1.0, steps)
    columns = split_bars({name: daily[name].to_numpy(np.float64) for name in OHLCV}, noise, 1.0 + 2.0 * u**2)
    return IntradayBars(list(daily["ticker"]), opens + 60_000 * np.arange(steps), 60, columns)


def second_bars(seed: int, day: dt.date, minutes: IntradayBars, minute: int) -> IntradayBars:
    """The 60 one-second bars of minute `minute` of `minutes`, aggregating exactly to that minute's bars."""
    ids = np.array([int(t[1:]) for t in minutes.tickers], dtype=np.int64)
    steps = 1_000_000 + minute * 60 + np.arange(60)  # apart from the minute level's steps
    noise = _normals(seed, ids, day.toordinal(), steps, 4)
    columns = split_bars({name: minutes.columns[name][minute] for name in OHLCV}, noise, np.ones(60))
    return IntradayBars(minutes.tickers, minutes.ts[minute] + 1000 * np.arange(60), 1, columns)


class SimulatedReplay(ReplaySource):
    """The simulated market's session of `day` for `tickers` (default: the whole universe) as 60 s or 1 s bars.

    `daily`: that day's daily bars if the caller has them (else they are simulated, as the batch path does)."""

    def __init__(
        self,
        seed: int,
        universe_size: int,
        day: str | dt.date,
        *,
        tickers: Sequence[str] | None = None,
        interval_s: int = 60,
        daily: pd.DataFrame | None = None,
        **pacing,
    ) -> None:
        super().__init__(**pacing)
        if interval_s not in (1, 60):
            raise ValueError(f"interval_s must be 1 or 60, got {interval_s}")
        self.seed, self.interval_s = seed, interval_s
        self.day = dt.date.fromisoformat(day) if isinstance(day, str) else day
        self.tickers = list(tickers) if tickers is not None else simulated_tickers(universe_size)
        if daily is None:
            daily = simulate_bars(seed, universe_size, self.day, self.day, tickers=self.tickers)
        self.daily = daily[daily["date"] == pd.Timestamp(self.day)]

    def minute_bars(self) -> IntradayBars:
        return minute_bars(self.seed, self.day, self.daily)

    def groups(self) -> Iterator[list[Bar]]:
        minutes = self.minute_bars()
        for step in range(len(minutes.ts)):
            if self.interval_s == 60:
                yield minutes.bars_at(step)
            else:
                seconds = second_bars(self.seed, self.day, minutes, step)
                yield from (seconds.bars_at(s) for s in range(60))
