"""Replay of real recorded trade bars in QuantConnect Lean's format (../shared/data/intraday/lean).

Layout `<root>/<minute|second>/<symbol>/<YYYYMMDD>_trade.zip`, one headerless CSV inside: milliseconds since midnight
America/New_York (the bar's start), open, high, low, close (integers x10,000), volume. Several tickers of one date are
merged into one time-ordered stream; a bar exists only where trades happened.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from stream.bars import Bar
from stream.sources.base import ReplaySource, grouped_by_end

EXCHANGE_TZ = ZoneInfo("America/New_York")
RESOLUTIONS = {"minute": 60, "second": 1}
PRICE_SCALE = 10_000


def deci_cents_to_price(values: np.ndarray) -> np.ndarray:
    """Integer prices x10,000 -> the nearest float to the exact decimal (1681234 -> 168.1234): one correctly rounded
    IEEE division of two exactly representable numbers, never a multiplication by the inexact 0.0001."""
    return np.asarray(values, dtype=np.int64).astype(np.float64) / PRICE_SCALE


def midnight_ms(day: dt.date) -> int:
    """Epoch ms (UTC) of wall-clock midnight in New York on `day` (sessions never span the 2 a.m. DST switch)."""
    noon = dt.datetime.combine(day, dt.time(12), EXCHANGE_TZ)
    offset_ms = int(noon.utcoffset().total_seconds() * 1000)
    return int(dt.datetime.combine(day, dt.time(0), dt.UTC).timestamp() * 1000) - offset_ms


def read_trade_zip(path: Path) -> pd.DataFrame:
    """The raw integer columns of one Lean trade-bar zip."""
    with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as handle:
        return pd.read_csv(handle, header=None, names=["ms", "open", "high", "low", "close", "volume"], dtype="int64")


class LeanReplay(ReplaySource):
    """The trade bars of `tickers` on `day` at `resolution`, optionally only between `start` and `end` (exchange time,
    bar starts in [start, end)), merged by bar end and paced at `speed`."""

    def __init__(
        self,
        root: str | Path,
        day: str | dt.date,
        tickers: Sequence[str],
        *,
        resolution: str = "minute",
        start: dt.time | None = None,
        end: dt.time | None = None,
        **pacing,
    ) -> None:
        super().__init__(**pacing)
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {sorted(RESOLUTIONS)}, got {resolution!r}")
        self.root, self.resolution, self.interval_s = Path(root), resolution, RESOLUTIONS[resolution]
        self.day = dt.date.fromisoformat(day) if isinstance(day, str) else day
        self.tickers = [t.upper() for t in tickers]
        self.start, self.end = start, end

    def path(self, ticker: str) -> Path:
        return self.root / self.resolution / ticker.lower() / f"{self.day:%Y%m%d}_trade.zip"

    def groups(self) -> Iterator[list[Bar]]:
        frames = [read_trade_zip(self.path(t)).assign(which=i) for i, t in enumerate(self.tickers)]
        bars = pd.concat(frames, ignore_index=True)
        if self.start is not None:
            bars = bars[bars["ms"] >= _ms_of_day(self.start)]
        if self.end is not None:
            bars = bars[bars["ms"] < _ms_of_day(self.end)]
        prices = [deci_cents_to_price(bars[c].to_numpy()) for c in ("open", "high", "low", "close")]
        ts = bars["ms"].to_numpy() + midnight_ms(self.day)
        volume = bars["volume"].to_numpy().astype(np.float64)
        yield from grouped_by_end(self.tickers, bars["which"].to_numpy(), ts, self.interval_s, [*prices, volume])


def _ms_of_day(when: dt.time) -> int:
    return ((when.hour * 60 + when.minute) * 60 + when.second) * 1000
