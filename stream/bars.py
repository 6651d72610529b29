"""One intraday bar, as every source yields it and as it travels through the Redis Stream (string fields)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,14}$")
FIELDS = ("ticker", "ts", "interval_s", "open", "high", "low", "close", "volume")


class BadBar(ValueError):
    """A bar that cannot be used, with the reason (dead-lettered by the worker, never dropped silently)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """A trade bar: `ts` is the bar's start in epoch milliseconds (UTC); it covers `interval_s` seconds."""

    ticker: str
    ts: int
    interval_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise BadBar(problem)

    @property
    def end_ms(self) -> int:
        """When the bar is complete (its data is known): start + interval."""
        return self.ts + self.interval_s * 1000

    def to_fields(self) -> dict[str, str]:
        """The bar as a Redis Stream entry (repr keeps every float exactly)."""
        return {name: str(value) if isinstance(value, (str, int)) else repr(value) for name, value in self._items()}

    def _items(self):
        return ((name, getattr(self, name)) for name in FIELDS)

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> Bar:
        """Parse a stream entry; BadBar names what is wrong (missing field, not a number, inconsistent prices)."""
        raw = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        missing = [name for name in FIELDS if name not in raw]
        if missing:
            raise BadBar(f"missing field(s) {', '.join(missing)}")
        try:
            ts, interval = int(raw["ts"]), int(raw["interval_s"])
            prices = [float(raw[name]) for name in ("open", "high", "low", "close", "volume")]
        except ValueError as exc:
            raise BadBar(f"not a number: {exc}") from None
        return cls(raw["ticker"], ts, interval, *prices)


def _problem(bar: Bar) -> str | None:
    if not isinstance(bar.ticker, str) or not TICKER.match(bar.ticker):
        return f"bad ticker {bar.ticker!r}"
    if bar.interval_s <= 0:
        return f"interval_s must be > 0, got {bar.interval_s}"
    values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    if not all(math.isfinite(v) for v in values):
        return "a price or the volume is not finite"
    if min(bar.open, bar.high, bar.low, bar.close) <= 0:
        return "prices must be > 0"
    if bar.volume < 0:
        return "volume must be >= 0"
    if bar.high < max(bar.open, bar.close, bar.low) or bar.low > min(bar.open, bar.close):
        return f"inconsistent prices: open {bar.open}, high {bar.high}, low {bar.low}, close {bar.close}"
    return None
