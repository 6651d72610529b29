"""Replay of Alpha Vantage TIME_SERIES_INTRADAY responses (real captures, ../shared/data/providers/alphavantage).

Timestamps are wall-clock times in the response's "6. Time Zone" and label the bar's END: a full 5-minute session
runs 09:35 .. 16:00 in the captures (none at 09:30), so a bar starts one interval before its label.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stream.bars import Bar
from stream.sources.base import ReplaySource, grouped_by_end

ERROR_KEYS = ("Error Message", "Note", "Information")  # answered with HTTP 200


def parse_intraday(payload: dict[str, Any]) -> tuple[str, int, pd.DataFrame]:
    """(symbol, interval_s, frame of ts (bar start, epoch ms UTC) and float OHLCV) of one response."""
    for key in ERROR_KEYS:
        if key in payload:
            raise ValueError(f"Alpha Vantage answered {key!r}: {payload[key]}")
    meta = payload["Meta Data"]
    interval = meta["4. Interval"]
    if not interval.endswith("min"):
        raise ValueError(f"not an intraday interval: {interval!r}")
    interval_s = int(interval.removesuffix("min")) * 60
    series = payload[f"Time Series ({interval})"]
    labels = pd.DatetimeIndex(pd.to_datetime(list(series))).tz_localize(meta["6. Time Zone"])
    end_ms = labels.tz_convert("UTC").as_unit("ms").asi8
    fields = ("1. open", "2. high", "3. low", "4. close", "5. volume")
    # float(text) is the nearest float to the decimal the API wrote.
    values = np.array([[float(bar[f]) for f in fields] for bar in series.values()], dtype=np.float64).reshape(-1, 5)
    frame = pd.DataFrame(values, columns=["open", "high", "low", "close", "volume"])
    frame.insert(0, "ts", end_ms - interval_s * 1000)
    return meta["2. Symbol"].upper(), interval_s, frame


class AlphaVantageReplay(ReplaySource):
    """The bars of one or more TIME_SERIES_INTRADAY responses (same interval), merged by bar end."""

    def __init__(self, paths: Sequence[str | Path], **pacing) -> None:
        super().__init__(**pacing)
        self.paths = [Path(p) for p in paths]

    def groups(self) -> Iterator[list[Bar]]:
        parsed = [parse_intraday(json.loads(p.read_text())) for p in self.paths]
        intervals = {interval for _, interval, _ in parsed}
        if len(intervals) != 1:
            raise ValueError(f"responses of different intervals cannot be merged: {sorted(intervals)}")
        tickers = [symbol for symbol, _, _ in parsed]
        bars = pd.concat([f.assign(which=i) for i, (_, _, f) in enumerate(parsed)], ignore_index=True)
        columns = [bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
        yield from grouped_by_end(tickers, bars["which"].to_numpy(), bars["ts"].to_numpy(), intervals.pop(), columns)
