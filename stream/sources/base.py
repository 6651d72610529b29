"""The one interface every source implements, and the pacing that replays known bars at any speed.

A source yields, in time order, lists of the bars that complete at the same moment (same `end_ms`): the unit a worker
XADDs in one pipelined batch. Pacing follows the bars' own timestamps: a batch is released when its bars' end, scaled
by `speed`, has elapsed since the first batch's end, so a replay keeps the session's rhythm (gaps, halts, the open's
burst) at real speed (1.0), N times faster (N), or as fast as possible (None or 0).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence

import numpy as np

from stream.bars import Bar

Clock = Callable[[], float]
AsyncSleep = Callable[[float], Awaitable[None]]


class BarSource(ABC):
    """Bars in time order, one list per moment at which bars complete: `async for batch in source: ...`."""

    @abstractmethod
    def batches(self) -> AsyncIterator[list[Bar]]:
        """Lists of bars sharing one `end_ms`, in increasing `end_ms`; tickers in a stable order within a list."""

    def __aiter__(self) -> AsyncIterator[list[Bar]]:
        return self.batches()


class ReplaySource(BarSource):
    """A source whose bars are known in advance (recorded or simulated), replayed at `speed`."""

    def __init__(
        self, *, speed: float | None = None, clock: Clock = time.monotonic, sleep: AsyncSleep = asyncio.sleep
    ) -> None:
        if speed is not None and speed < 0:
            raise ValueError(f"speed must be >= 0 (0 or None: as fast as possible), got {speed}")
        self.speed, self._clock, self._sleep = speed, clock, sleep

    @abstractmethod
    def groups(self) -> Iterator[list[Bar]]:
        """The batches, unpaced."""

    async def batches(self) -> AsyncIterator[list[Bar]]:
        async for batch in paced(self.groups(), self.speed, clock=self._clock, sleep=self._sleep):
            yield batch


async def paced(
    groups: Iterable[list[Bar]],
    speed: float | None,
    *,
    clock: Clock = time.monotonic,
    sleep: AsyncSleep = asyncio.sleep,
) -> AsyncIterator[list[Bar]]:
    """Release each batch when (its end - the first batch's end) / speed seconds have passed since the first."""
    start = first_end = None
    for group in groups:
        if speed:
            end = group[0].end_ms
            if start is None:
                start, first_end = clock(), end
            wait = start + (end - first_end) / 1000.0 / speed - clock()
            if wait > 0:
                await sleep(wait)
        yield group


def grouped_by_end(
    tickers: Sequence[str],
    which: np.ndarray,
    ts: np.ndarray,
    interval_s: int,
    columns: Sequence[np.ndarray],
) -> Iterator[list[Bar]]:
    """Bars from flat arrays (`which` indexes `tickers`), sorted by end then ticker, one list per end time."""
    order = np.lexsort((which, ts))
    ts, which = ts[order], which[order]
    values = [column[order].tolist() for column in columns]  # Python floats: repr of a numpy float is not a number
    bounds = np.flatnonzero(np.diff(ts)) + 1
    starts, stops = np.r_[0, bounds].tolist(), np.r_[bounds, len(ts)].tolist()
    names, stamps = [tickers[i] for i in which.tolist()], ts.tolist()
    for lo, hi in zip(starts, stops, strict=True):
        if lo == hi:
            continue
        yield [Bar(names[i], stamps[i], interval_s, *(v[i] for v in values)) for i in range(lo, hi)]
