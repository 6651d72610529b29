"""Cache writes after the answer: what the requests of one moment computed goes to Redis in a single call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine

from bento.store import RedisLink, RedisUnavailable

GATHER_S = 0.002  # how long the writer lets concurrent requests queue theirs before it writes


class WriteBehind:
    def __init__(self, redis: RedisLink, ttl_seconds: int, spawn: Callable[[Coroutine], None]) -> None:
        self.redis, self.ttl, self.spawn = redis, ttl_seconds, spawn
        self._items: list[tuple[str, bytes]] = []
        self._locks: list[str] = []
        self._flushing = False

    def put(self, items: list[tuple[str, bytes]], locks: list[str]) -> None:
        """Queue (cache key, answer) items and the compute locks to release with them."""
        self._items.extend(items)
        self._locks.extend(locks)
        if not self._flushing:
            self._flushing = True
            self.spawn(self._flush())

    async def _flush(self) -> None:
        try:
            while self._items or self._locks:
                await asyncio.sleep(GATHER_S)
                items, self._items = self._items, []
                locks, self._locks = self._locks, []
                try:
                    await self.redis.store(items, self.ttl, locks)
                except RedisUnavailable:
                    pass  # the answers were sent; they are computed again next time
        finally:
            self._flushing = False
