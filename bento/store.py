"""Redis for the service: online features, the prediction cache, rate limits and the reload signal.

Every call goes through `RedisLink`, a circuit breaker: the first connection error marks Redis down, later calls
fail fast (the service answers from the lake, uncached, with a per-worker rate limit) and a background ping brings
it back. Scripts keep the hot path at one round trip: a cache hit is one EVALSHA that reads the ticker's feature
date and the cached answer together. The client is redis-py's asyncio one (hiredis parser, a connection pool).
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
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bento.features import snapshot_rows
from bento.pipelining import AutoPipeline
from bento.rate_limit import GCRA_SCRIPT, RATE_PREFIX, Limit, RateLimited, interval_us
from bento.redis_scripts import ANSWERS_SCRIPT, LOOKUP_SCRIPT, STORE_SCRIPT
from stockpred_core.io.online_store import (
    INTRADAY_FIELD,
    KEY_PREFIX,
    META_KEY,
    SNAPSHOT_KEY,
    decode_snapshot,
    decode_vector,
)
from stockpred_core.redaction import redact, redact_url
from stockpred_core.resilience.breaker import CircuitBreaker, CircuitOpenError
from stockpred_core.serving.keys import CACHE_PREFIX, LOCK_PREFIX, RELOAD_KEY
from stockpred_core.serving.rows import FeatureRow

logger = logging.getLogger("bentoml.stockpred")
T = TypeVar("T")

SCRIPT_CHUNK = 2000  # tickers per script call: Redis runs a script alone, so long ones would stall other clients
POOL_SIZE = 256  # connections per worker; a request waits for one (up to the timeout) rather than fail


class RedisUnavailable(RuntimeError):
    pass


def _all(coros: list) -> Awaitable[list]:
    """gather, without its task machinery for the usual single call."""
    if len(coros) == 1:

        async def one() -> list:
            return [await coros[0]]

        return one()
    return asyncio.gather(*coros)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


class Lookup:
    """What the lookup script said about one ticker."""

    __slots__ = ("cached", "date", "locked", "row")

    def __init__(self, date: str, cached: bytes | None, row: FeatureRow | None, locked: bool) -> None:
        self.date, self.cached, self.row, self.locked = date, cached, row, locked


class RedisLink:
    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.url = url
        self.safe_url = redact_url(url)  # what logs and answers show: the password masked
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: the breaker below decides when to try again
        )
        # The project's one breaker (stockpred_core.resilience), opened by the first failed call. Its half-open
        # trial is the background ping in `watch`, never a request: while Redis is away no request waits for it.
        self.breaker = CircuitBreaker(failure_threshold=1, reset_s=0.0)
        self.client = aioredis.Redis(connection_pool=pool)
        self.pipeline = AutoPipeline(self.client)  # the per-request lookups of a moment share one round trip
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

    @property
    def intraday(self) -> bool:
        """Whether the stream worker refreshes the online vectors during the session (newer than the snapshot)."""
        return bool(self.meta.get(INTRADAY_FIELD))

    @property
    def up(self) -> bool:
        return self.breaker.state == "closed"

    def _mark_down(self, exc: BaseException) -> None:
        was_up = self.up
        self.breaker.record_failure()
        self.error = redact(f"{type(exc).__name__}: {exc}")
        if was_up:
            logger.warning(
                "Redis at %s is unavailable (%s): answering from the lake, uncached", self.safe_url, redact(str(exc))
            )
            self.down_since = time.time()
            if self.on_change:
                self.on_change(False)

    async def _probe(self) -> None:
        """The breaker's half-open trial: one ping; closes it (Redis is back) or opens it again."""
        try:
            self.breaker.before_request()
        except CircuitOpenError:
            return  # a trial is already out
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            self.breaker.record_failure()
            self.error = redact(f"{type(exc).__name__}: {exc}")
            return
        self.breaker.record_success()
        self.error, self.down_since = None, None
        logger.warning("Redis at %s is back", self.safe_url)
        if self.on_change:
            self.on_change(True)

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
                    await self._probe()
                if self.up:
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
            self.rows = await asyncio.to_thread(snapshot_rows, snapshot)
            self._snapshot_written_at = written_at
            if self.on_snapshot:
                self.on_snapshot()
        return self.meta

    def columns(self, version: str) -> tuple[str, ...] | None:
        return self._columns.get(version)

    async def lookup(
        self, tickers: list[str], prefix: str, explained: bool, lock_ms: int = 0, rate: Limit | None = None
    ) -> dict[str, Lookup | None]:
        """Per ticker: None when Redis has no vector for it, else its date and the cached answer or its row.
        With `rate` (key id, requests/s, burst) the caller's rate limit is charged first (RateLimited when over)."""
        chunks = _chunks(tickers, SCRIPT_CHUNK)
        base_args = [prefix, "1" if explained else "0", str(lock_ms), LOCK_PREFIX]

        def call(i: int, chunk: list[str]) -> Awaitable:
            keys = [KEY_PREFIX + t for t in chunk]
            limit = ["0", "0", "0"]
            if rate is not None and i == 0:  # the first chunk charges the request once
                keys.append(RATE_PREFIX + rate[0])
                limit = ["1", str(interval_us(rate[1])), str(rate[2])]
            return self.pipeline.run(self._lookup, keys, [*base_args, *limit, *chunk])

        replies = await self.call(lambda: _all([call(i, c) for i, c in enumerate(chunks)]))
        if (wait_ms := int(replies[0][0])) > 0:
            raise RateLimited(wait_ms / 1000)
        out: dict[str, Lookup | None] = {}
        missing_columns = False
        for chunk, (_, reply) in zip(chunks, replies, strict=True):
            for ticker, item in zip(chunk, reply, strict=True):
                out[ticker] = found = self._found(ticker, item)
                missing_columns |= found is None and bool(item)
        if missing_columns:
            await self.refresh_meta()
        return out

    def _found(self, ticker: str, item) -> Lookup | None:
        if not item:
            return None
        date = item[0].decode()
        if item[1] is not None:
            return Lookup(date, item[1], None, False)
        version = item[3].decode() if item[3] else ""
        columns = self._columns.get(version)
        if columns is None:
            return None  # a vector whose layout is unknown yet: read the lake instead (and the meta again)
        values = decode_vector(item[4]) if item[4] else np.full(len(columns), np.nan)
        as_of = item[6].decode() if len(item) > 6 and item[6] else None
        row = FeatureRow(ticker, date, float(item[2]), version, values, columns, "redis", as_of)
        return Lookup(date, None, row, bool(item[5]))

    async def answers(
        self, prefix: str, items: list[tuple[str, str]], explained: bool, rate: Limit | None = None
    ) -> list[bytes | None]:
        """Cached answers of (ticker, date) items in one round trip; with `rate`, the caller's rate limit is
        charged first (RateLimited when over it)."""
        flag = "1" if explained else "0"

        def call(i: int, chunk: list[tuple[str, str]]) -> Awaitable:
            joined = "\n".join(f"{t}:{d}" for t, d in chunk)
            if rate is not None and i == 0:
                limit = ["1", str(interval_us(rate[1])), str(rate[2])]
                return self.pipeline.run(self._answers, [RATE_PREFIX + rate[0]], [*limit, prefix, flag, joined])
            return self.pipeline.run(self._answers, [], ["0", "0", "0", prefix, flag, joined])

        chunks = _chunks(items, 5 * SCRIPT_CHUNK)
        replies = await self.call(lambda: _all([call(i, c) for i, c in enumerate(chunks)]))
        if (wait_ms := int(replies[0][0])) > 0:
            raise RateLimited(wait_ms / 1000)
        return [value for _, values in replies for value in values]

    async def store(self, items: list[tuple[str, bytes]], ttl: int, locks: list[str] | None = None) -> None:
        """Write answers with a TTL (one script call per chunk) and release the given locks (`lock_name`s)."""

        def calls() -> asyncio.Future:
            pending = [
                self._store(keys=[], args=[ttl, "\n".join(k for k, _ in c), b"\n".join(v for _, v in c)])
                for c in _chunks(items, 5 * SCRIPT_CHUNK)
                if c
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
        await self.client.aclose()
