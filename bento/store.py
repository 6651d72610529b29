"""Redis for the service: online features, the prediction cache, rate limits and the reload signal.

Every call goes through `RedisLink`, a circuit breaker: the first connection error marks Redis down, later calls
fail fast (the service answers from the lake, uncached, with a per-worker rate limit) and a background ping brings
it back. Scripts keep the hot path at one round trip: a cache hit is one EVALSHA that reads the ticker's feature
date and the cached answer together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from bento.features import FeatureRow
from bento.resp import PipelinedRedis
from bento.security import GCRA_FUNCTION, GCRA_SCRIPT, RATE_PREFIX, interval_us
from stockpred_core.io.online_store import (
    KEY_PREFIX,
    META_KEY,
    SNAPSHOT_KEY,
    Snapshot,
    decode_snapshot,
    decode_vector,
)
from stockpred_core.redaction import redact, redact_url

logger = logging.getLogger("bentoml.stockpred")
T = TypeVar("T")

CACHE_PREFIX = "stockpred:pred:"
LOCK_PREFIX = "stockpred:lock:"
RELOAD_KEY = "stockpred:control:reload"
SCRIPT_CHUNK = 2000  # tickers per script call: Redis runs a script alone, so long ones would stall other clients

# First, when ARGV[5] is "1", the caller's rate limit (its key is the last of KEYS; ARGV[6], ARGV[7]: interval in
# microseconds, burst): a refused request reads nothing. Then per ticker: its feature date and the cached answer,
# else its vector (and, when ARGV[3] > 0, a lock, so only one caller computes a missing answer while the others wait
# for it). KEYS: online hashes. ARGV[1]: cache key prefix (model, version, horizon); ARGV[2]: "1" when contributions
# are needed (a plain entry does not count then); ARGV[3]: lock ms; ARGV[4]: lock prefix; ARGV[7 + i]: the ticker
# of KEYS[i]. Returns {0, answers} or {milliseconds to wait, {}}.
LOOKUP_SCRIPT = (
    GCRA_FUNCTION
    + """
local n = #KEYS
if ARGV[5] == '1' then
  n = n - 1
  local wait = gcra(KEYS[#KEYS], tonumber(ARGV[6]), tonumber(ARGV[7]))
  if wait > 0 then return {wait, {}} end
end
local out = {}
local first, second = ':x', ':p'
if ARGV[2] == '0' then first, second = ':p', ':x' end
local lock_ms = tonumber(ARGV[3])
for i = 1, n do
  local key = KEYS[i]
  local date = redis.call('HGET', key, 'date')
  if not date then
    out[i] = false
  else
    local base = ARGV[1] .. ARGV[7 + i] .. ':' .. date
    local cached = redis.call('GET', base .. first)
    if (not cached) and ARGV[2] == '0' then cached = redis.call('GET', base .. second) end
    if cached then
      out[i] = {date, cached}
    else
      local f = redis.call('HMGET', key, 'close', 'feature_set_version', 'vector')
      local locked = 0
      if lock_ms > 0 and redis.call('SET', ARGV[4] .. base, '1', 'NX', 'PX', lock_ms) then locked = 1 end
      out[i] = {date, false, f[1], f[2], f[3], locked}
    end
  end
end
return {0, out}
"""
)
# Many answers in one call, after charging the caller's rate limit (ARGV[1] "1": its key is KEYS[1]; ARGV[2],
# ARGV[3]: interval in microseconds, burst). ARGV[4]: cache key prefix; ARGV[5]: "1" when contributions are needed
# (else an explained answer serves too); ARGV[6]: "ticker:date" items joined by newlines (one argument rather than
# thousands: packing arguments is what costs the client). Returns {0, values} or {milliseconds to wait, {}}.
ANSWERS_SCRIPT = (
    GCRA_FUNCTION
    + """
if ARGV[1] == '1' then
  local wait = gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
  if wait > 0 then return {wait, {}} end
end
local keys = {}
for item in string.gmatch(ARGV[6], '[^\\n]+') do keys[#keys + 1] = ARGV[4] .. item end
local suffix = ':p'
if ARGV[5] == '1' then suffix = ':x' end
local out = {}
for i = 1, #keys, 1000 do
  local batch = {}
  for k = i, math.min(i + 999, #keys) do batch[#batch + 1] = keys[k] .. suffix end
  local values = redis.call('MGET', unpack(batch))
  for k = 1, #values do out[i + k - 1] = values[k] end
end
if ARGV[5] == '0' then
  local missing = {}
  for i = 1, #keys do
    if not out[i] then missing[#missing + 1] = i end
  end
  for i = 1, #missing, 1000 do
    local batch = {}
    for k = i, math.min(i + 999, #missing) do batch[#batch + 1] = keys[missing[k]] .. ':x' end
    local values = redis.call('MGET', unpack(batch))
    for k = 1, #values do out[missing[i + k - 1]] = values[k] end
  end
end
return {0, out}
"""
)
# Answers with a TTL. ARGV[1]: TTL seconds; ARGV[2]: keys joined by newlines; ARGV[3]: the values joined likewise
# (JSON without raw newlines).
STORE_SCRIPT = """
local values = {}
for value in string.gmatch(ARGV[3], '[^\\n]+') do values[#values + 1] = value end
local i = 0
for key in string.gmatch(ARGV[2], '[^\\n]+') do
  i = i + 1
  redis.call('SET', key, values[i], 'EX', ARGV[1])
end
return i
"""


class RedisUnavailable(RuntimeError):
    pass


class RateLimited(RuntimeError):
    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"rate limited for {wait_seconds:.3f} s")
        self.wait_seconds = wait_seconds


def cache_prefix(model_name: str, version: str, horizon: int) -> str:
    return f"{CACHE_PREFIX}{model_name}:{version}:h{horizon}:"


def _all(coros: list) -> Awaitable[list]:
    """gather, without its task machinery for the usual single call."""
    if len(coros) == 1:

        async def one() -> list:
            return [await coros[0]]

        return one()
    return asyncio.gather(*coros)


def lock_name(prefix: str, ticker: str, date: str) -> str:
    """The answer's identity without its explained/plain suffix (what the lookup script locks)."""
    return f"{prefix}{ticker}:{date}"


def cache_key(prefix: str, ticker: str, date: str, explained: bool) -> str:
    return f"{lock_name(prefix, ticker, date)}:{'x' if explained else 'p'}"


def _snapshot_rows(snapshot: Snapshot | None) -> dict[str, FeatureRow]:
    if snapshot is None:
        return {}
    close_at = snapshot.columns.index("close") if "close" in snapshot.columns else None
    closes = snapshot.matrix[:, close_at].tolist() if close_at is not None else [float("nan")] * len(snapshot.tickers)
    return {
        ticker: FeatureRow(ticker, date, close, version, values, snapshot.columns, "redis")
        for ticker, date, close, version, values in zip(
            snapshot.tickers, snapshot.dates, closes, snapshot.versions, snapshot.matrix, strict=True
        )
    }


class Lookup:
    """What the lookup script said about one ticker."""

    __slots__ = ("cached", "date", "locked", "row")

    def __init__(self, date: str, cached: bytes | None, row: FeatureRow | None, locked: bool) -> None:
        self.date, self.cached, self.row, self.locked = date, cached, row, locked


class RedisLink:
    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.url = url
        self.safe_url = redact_url(url)  # what logs and answers show: the password masked
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: the breaker below decides when to try again
            max_connections=256,
        )
        self.fast = PipelinedRedis(url, timeout)  # the per-request script calls (see bento.resp)
        self.up = True
        self.error: str | None = None
        self.down_since: float | None = None
        self._lookup = self.client.register_script(LOOKUP_SCRIPT)
        self._answers = self.client.register_script(ANSWERS_SCRIPT)
        self._store = self.client.register_script(STORE_SCRIPT)
        self._gcra = self.client.register_script(GCRA_SCRIPT)
        self._columns: dict[str, tuple[str, ...]] = {}
        self.meta: dict[str, str] = {}
        # The online store's packed snapshot, reloaded when it is rewritten: ticker -> row, whose date builds cache
        # keys without reading hashes and whose vector scores a batch's misses without reading them.
        self.rows: dict[str, FeatureRow] = {}
        self._snapshot_written_at: str | None = None
        self.on_change: Callable[[bool], None] | None = None
        self.on_snapshot: Callable[[], None] | None = None  # after a new snapshot is in place

    def _mark_down(self, exc: BaseException) -> None:
        if self.up:
            logger.warning(
                "Redis at %s is unavailable (%s): answering from the lake, uncached", self.safe_url, redact(str(exc))
            )
            self.down_since = time.time()
            if self.on_change:
                self.on_change(False)
        self.up, self.error = False, redact(f"{type(exc).__name__}: {exc}")

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        if not self.up:
            raise RedisUnavailable(self.error or "Redis is down")
        try:
            return await make()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._mark_down(exc)
            raise RedisUnavailable(redact(str(exc))) from exc
        except RedisError as exc:  # an error reply (out of memory, a busy script): this call degrades, not Redis
            logger.warning("Redis answered an error: %s", redact(str(exc)))
            raise RedisUnavailable(redact(str(exc))) from exc

    async def watch(self, interval: float = 1.0) -> None:
        """Background task: ping while down, and refresh the online store's meta while up."""
        while True:
            try:
                if not self.up:
                    await self.client.ping()
                    self.up, self.error, self.down_since = True, None, None
                    logger.warning("Redis at %s is back", self.safe_url)
                    if self.on_change:
                        self.on_change(True)
                await self.refresh_meta()
            except RedisUnavailable:
                pass
            except (RedisError, OSError) as exc:
                self.error = redact(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(interval)

    async def refresh_meta(self) -> dict[str, str]:
        raw = await self.call(lambda: self.client.hgetall(META_KEY))
        self.meta = {k.decode(): v.decode() for k, v in raw.items()}
        for name, value in self.meta.items():
            if name.startswith("columns:"):
                self._columns.setdefault(name[len("columns:") :], tuple(json.loads(value)))
        written_at = self.meta.get("written_at")
        if written_at != self._snapshot_written_at:
            raw = await self.call(lambda: self.client.hgetall(SNAPSHOT_KEY))
            try:
                snapshot = await asyncio.to_thread(decode_snapshot, raw)
            except (KeyError, ValueError) as exc:
                logger.warning("ignoring the online snapshot (%s): batches read the hashes instead", exc)
                snapshot = None
            if snapshot is not None and snapshot.written_at != written_at:
                return self.meta  # rewritten between the two reads: the next refresh takes the newer one
            self.rows = await asyncio.to_thread(_snapshot_rows, snapshot)
            self._snapshot_written_at = written_at
            if self.on_snapshot:
                self.on_snapshot()
        return self.meta

    def columns(self, version: str) -> tuple[str, ...] | None:
        return self._columns.get(version)

    async def lookup(
        self,
        tickers: list[str],
        prefix: str,
        explained: bool,
        lock_ms: int = 0,
        rate: tuple[str, float, int] | None = None,
    ) -> dict[str, Lookup | None]:
        """Per ticker: None when Redis has no vector for it, else its date and the cached answer or its row.
        With `rate` (key id, requests/s, burst) the caller's rate limit is charged first (RateLimited when over)."""
        chunks = [tickers[i : i + SCRIPT_CHUNK] for i in range(0, len(tickers), SCRIPT_CHUNK)] or [[]]
        base_args = [prefix, "1" if explained else "0", str(lock_ms), LOCK_PREFIX]

        def call(i: int, chunk: list[str]):
            keys = [KEY_PREFIX + t for t in chunk]
            limit = ["0", "0", "0"]
            if rate is not None and i == 0:  # the first chunk charges the request once
                keys.append(RATE_PREFIX + rate[0])
                limit = ["1", str(interval_us(rate[1])), str(rate[2])]
            return self.fast.evalsha(self._lookup, keys, [*base_args, *limit, *chunk])

        replies = await self.call(lambda: _all([call(i, c) for i, c in enumerate(chunks)]))
        wait_ms = int(replies[0][0])
        if wait_ms > 0:
            raise RateLimited(wait_ms / 1000)
        out: dict[str, Lookup | None] = {}
        missing_columns = False
        for chunk, (_, reply) in zip(chunks, replies, strict=True):
            for ticker, item in zip(chunk, reply, strict=True):
                if not item:
                    out[ticker] = None
                    continue
                date = item[0].decode()
                if item[1] is not None:
                    out[ticker] = Lookup(date, item[1], None, False)
                    continue
                version = item[3].decode() if item[3] else ""
                columns = self._columns.get(version)
                if columns is None:
                    missing_columns = True
                    out[ticker] = None  # a vector whose layout is unknown yet: read the lake instead
                    continue
                values = decode_vector(item[4]) if item[4] else np.full(len(columns), np.nan)
                row = FeatureRow(ticker, date, float(item[2]), version, values, columns, "redis")
                out[ticker] = Lookup(date, None, row, bool(item[5]))
        if missing_columns:
            await self.refresh_meta()
        return out

    async def answers(
        self, prefix: str, items: list[tuple[str, str]], explained: bool, rate: tuple[str, float, int] | None = None
    ) -> list[bytes | None]:
        """Cached answers of (ticker, date) items in one round trip; with `rate`, the caller's rate limit is
        charged first (RateLimited when over it)."""
        chunks = [items[i : i + 5 * SCRIPT_CHUNK] for i in range(0, len(items), 5 * SCRIPT_CHUNK)] or [[]]

        def call(i: int, chunk: list[tuple[str, str]]):
            joined = "\n".join(f"{t}:{d}" for t, d in chunk)
            flag = "1" if explained else "0"
            if rate is not None and i == 0:
                limit = ["1", str(interval_us(rate[1])), str(rate[2])]
                return self.fast.evalsha(self._answers, [RATE_PREFIX + rate[0]], [*limit, prefix, flag, joined])
            return self.fast.evalsha(self._answers, [], ["0", "0", "0", prefix, flag, joined])

        replies = await self.call(lambda: _all([call(i, c) for i, c in enumerate(chunks)]))
        wait_ms = int(replies[0][0])
        if wait_ms > 0:
            raise RateLimited(wait_ms / 1000)
        return [value for _, values in replies for value in values]

    async def store(self, items: list[tuple[str, bytes]], ttl: int, locks: list[str] | None = None) -> None:
        """Write answers with a TTL (one script call per chunk) and release the given locks (`lock_name`s)."""

        def calls() -> asyncio.Future:
            chunks = [items[i : i + 5 * SCRIPT_CHUNK] for i in range(0, len(items), 5 * SCRIPT_CHUNK)]
            pending = [
                self._store(keys=[], args=[ttl, "\n".join(k for k, _ in c), b"\n".join(v for _, v in c)])
                for c in chunks
            ]
            if locks:
                pending.append(self.client.delete(*(LOCK_PREFIX + name for name in locks)))
            return asyncio.gather(*pending)

        await self.call(calls)

    async def rate(self, key_id: str, rate: float, burst: int) -> float:
        """0 when the request may go ahead, else seconds to wait."""
        wait_ms = await self.call(lambda: self._gcra(keys=[RATE_PREFIX + key_id], args=[interval_us(rate), burst]))
        return int(wait_ms) / 1000

    async def flush_cache(self) -> int:
        async def flush() -> int:
            deleted = 0
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=f"{CACHE_PREFIX}*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += await self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += await self.client.unlink(*batch)
            return deleted

        return await self.call(flush)

    async def reload_token(self) -> bytes | None:
        return await self.call(lambda: self.client.get(RELOAD_KEY))

    async def signal_reload(self) -> None:
        await self.call(lambda: self.client.incr(RELOAD_KEY))

    async def close(self) -> None:
        await self.fast.close()
        await self.client.aclose()
