"""The worker loop (read a batch, store its effects, acknowledge) and the intraday store, its first handler.

Duplicate and out-of-order rule (the intraday store applies it, atomically per batch, by (ticker, bar ts)):
a bar whose ts is <= its ticker's last applied ts is not applied. It counts as a duplicate when the bar stored under
that ts is identical (a source sent it twice, or the batch was delivered again after a crash), else as out_of_order (a
late bar, or a different bar for a ts already passed). So redelivery after a crash is harmless: every bar of the
redelivered batch that was applied before the crash is a duplicate the second time.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Protocol

import redis

from stockpred_core.io.stream_events import write_status
from stream.bars import Bar
from stream.bus import Entry, GroupReader

logger = logging.getLogger("stockpred.stream")

INTRADAY_PREFIX = "stockpred:intraday"
STATUS_EVERY_S = 1.0  # how often a worker refreshes its line of the status hash (what Dagster's sensor observes)
APPLIED, DUPLICATE, OUT_OF_ORDER = "applied", "duplicates", "out_of_order"


class Handler(Protocol):
    """Stores a batch's effects idempotently (by ticker and bar ts): called again with the same bars after a crash.

    A handler may expose `counts` (str -> int), reported with the worker's counters."""

    def handle(self, bars: list[Bar]) -> None: ...


# ARGV: ttl, key prefix, then the batch as one string, a line per bar: "<ticker> <ts> <UTC date> <value>\n" with value
# "interval_s,open,high,low,close,volume" (one argument rather than four per bar: encoding arguments is what costs the
# client, ~1 us each). Keys are built here, so the store wants one Redis, not a cluster. Returns one code per bar:
# "a" applied, "d" duplicate, "o" out of order.
_APPLY = """
local ttl, prefix = tonumber(ARGV[1]), ARGV[2]
local last, newest, codes = {}, {}, {}
for ticker, ts, date, value in string.gmatch(ARGV[3], '(%S+) (%S+) (%S+) (%S+)\\n') do
  local latest, day = prefix .. ':latest:' .. ticker, prefix .. ':bars:' .. ticker .. ':' .. date
  local state = last[ticker]
  if state == nil then
    local stored = redis.call('HMGET', latest, 'ts', 'date')
    state = {tonumber(stored[1] or '-1'), stored[2]}
    last[ticker] = state
  end
  local tsn = tonumber(ts)
  if tsn <= state[1] then
    codes[#codes + 1] = (redis.call('HGET', day, ts) == value) and 'd' or 'o'
  else
    redis.call('HSET', day, ts, value)
    if state[2] ~= date then  -- the ticker's first bar of this day: the day's hash expires after ttl
      redis.call('EXPIRE', day, ttl)
    end
    last[ticker] = {tsn, date}
    newest[latest] = {ts, date, value}
    codes[#codes + 1] = 'a'
  end
end
for latest, bar in pairs(newest) do
  redis.call('HSET', latest, 'ts', bar[1], 'date', bar[2], 'bar', bar[3])
end
return table.concat(codes)
"""
_KIND = {"a": APPLIED, "d": DUPLICATE, "o": OUT_OF_ORDER}


class IntradayStore:
    """The latest bar per ticker (hash `<prefix>:latest:<ticker>`: ts = the last applied ts, date, bar) and the day's
    bars (hash `<prefix>:bars:<ticker>:<UTC date>`: bar ts -> "interval_s,open,high,low,close,volume"), applied once
    per (ticker, ts) by the rule above."""

    def __init__(self, client: redis.Redis, *, prefix: str = INTRADAY_PREFIX, ttl_s: int = 3 * 86400) -> None:
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s
        self._apply = client.register_script(_APPLY)
        self.counts: Counter[str] = Counter({APPLIED: 0, DUPLICATE: 0, OUT_OF_ORDER: 0})

    def handle(self, bars: list[Bar]) -> None:
        self.apply(bars)

    def apply(self, bars: list[Bar]) -> list[str]:
        """Apply a batch in one atomic script (never half-applied); each bar's kind: applied/duplicates/out_of_order."""
        if not bars:
            return []
        lines = "".join(f"{bar.ticker} {bar.ts} {utc_date(bar.ts)} {_encode(bar)}\n" for bar in bars)
        kinds = [_KIND[code] for code in self._apply(args=[self.ttl_s, self.prefix, lines]).decode()]
        self.counts.update(kinds)
        return kinds

    def latest(self, ticker: str) -> Bar | None:
        """The ticker's last applied bar (its ts is the last applied ts)."""
        ts, value = self.client.hmget(f"{self.prefix}:latest:{ticker}", "ts", "bar")
        return None if ts is None else _decode(ticker, int(ts), value)

    def day_bars_many(self, tickers: list[str], dates: Sequence[str]) -> list[list[Bar]]:
        """Per ticker, its bars of all `dates` (UTC) in ts order, read in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for ticker in tickers:
            for day in dates:
                pipe.hgetall(f"{self.prefix}:bars:{ticker}:{day}")
        replies = iter(pipe.execute())
        out = []
        for ticker in tickers:
            stored = [item for _ in dates for item in next(replies).items()]
            out.append([_decode(ticker, int(ts), v) for ts, v in sorted(stored, key=lambda kv: int(kv[0]))])
        return out

    def day_bars(self, ticker: str, date: str) -> list[Bar]:
        """The ticker's bars of `date` (YYYY-MM-DD, UTC) in ts order."""
        stored = self.client.hgetall(f"{self.prefix}:bars:{ticker}:{date}")
        return [_decode(ticker, int(ts), value) for ts, value in sorted(stored.items(), key=lambda kv: int(kv[0]))]


def utc_date(ts_ms: int) -> str:
    """YYYY-MM-DD of an epoch-ms instant, in UTC (a US session lies within one UTC date)."""
    day = ts_ms // 86_400_000
    found = _DATES.get(day)
    if found is None:
        if len(_DATES) > 10_000:
            _DATES.clear()
        found = _DATES[day] = str(_EPOCH + timedelta(days=day))
    return found


_DATES: dict[int, str] = {}


_EPOCH = date(1970, 1, 1)


def _encode(bar: Bar) -> str:
    return f"{bar.interval_s},{bar.open!r},{bar.high!r},{bar.low!r},{bar.close!r},{bar.volume!r}"


def _decode(ticker: str, ts: int, value: bytes) -> Bar:
    interval, *numbers = value.decode().split(",")
    return Bar(ticker, ts, int(interval), *(float(x) for x in numbers))


class Worker:
    """Reads batches from its shards, hands the well-formed bars to the handler, dead-letters the malformed ones,
    then acknowledges the batch (only after the handler returned: at-least-once)."""

    def __init__(self, reader: GroupReader, handler: Handler, *, clock: Callable[[], float] = time.time) -> None:
        self.reader, self.handler, self.clock = reader, handler, clock
        self._counts: Counter[str] = Counter({"entries": 0, "batches": 0, "dead_lettered": 0})
        self._trimmed = 0
        self.last_bar_end_ms: int | None = None
        self._recovered = False
        self._reported: float | None = None

    def step(self) -> int:
        """One batch: read, handle, dead-letter, acknowledge; how many entries it held (0: nothing to read)."""
        if not self._recovered:
            self.reader.recover()
            self._recovered = True
        entries = self.reader.read()
        if not entries:
            return 0
        bars, dead = self._parse(entries)
        if bars:
            self.handler.handle(bars)
            self.last_bar_end_ms = max(self.last_bar_end_ms or 0, max(bar.end_ms for bar in bars))
        self.reader.ack(entries, dead)
        self._counts.update(entries=len(entries), batches=1, dead_lettered=len(dead))
        self.report()
        return len(entries)

    def report(self, force: bool = False) -> None:
        """Write this worker's counters, newest bar and lag to the status hash (at most every STATUS_EVERY_S)."""
        now = self.clock()
        if not force and self._reported is not None and now - self._reported < STATUS_EVERY_S:
            return
        self._reported = now
        status = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.counters().items()}
        write_status(
            self.reader.bus.client,
            self.reader.consumer,
            {**status, "last_bar_end_ms": self.last_bar_end_ms, "updated_at": now},
        )

    def run(self, stop: Callable[[], bool], *, max_backoff_s: float = 5.0) -> None:
        """Step until `stop()` (checked between batches: a batch is finished, never abandoned half-way by a stop).
        While Redis is unreachable, retry with backoff; then re-read the pending entries first."""
        backoff = 0.1
        while not stop():
            try:
                if not self.step():
                    self.report()  # idle: the status still says the worker is alive
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                logger.warning("Redis unreachable (%s): retrying in %.1fs", exc, backoff)
                self._recovered = False  # an unacknowledged batch is read again from the pending list
                time.sleep(backoff)
                backoff = min(backoff * 2, max_backoff_s)

    def counters(self) -> dict[str, float]:
        """What metrics report: entries, batches, applied, duplicates, out_of_order, dead_lettered, trimmed,
        group_recreated, and lag_seconds (now - end of the newest bar handled; NaN before the first)."""
        lag = float("nan") if self.last_bar_end_ms is None else self.clock() - self.last_bar_end_ms / 1000
        handler_counts: Mapping[str, int] = getattr(self.handler, "counts", {})
        return {
            **self._counts,
            **handler_counts,
            "trimmed": self._trimmed + self.reader.trimmed,
            "group_recreated": self.reader.group_recreated,
            "lag_seconds": lag,
        }

    def _parse(self, entries: Iterable[Entry]) -> tuple[list[Bar], list[tuple[Entry, str]]]:
        bars, dead = [], []
        for entry in entries:
            if not entry.fields:  # trimmed by MAXLEN before it was read: nothing left to apply
                self._trimmed += 1
                continue
            try:
                bars.append(Bar.from_fields(entry.fields))
            except ValueError as exc:  # BadBar, or bytes that are not UTF-8
                dead.append((entry, str(exc)))
        if dead:
            logger.warning("dead-lettered %d malformed entries, e.g. %s: %s", len(dead), dead[0][0].id, dead[0][1])
        return bars, dead
