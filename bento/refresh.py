"""Following the registry and the lake: the champion alias (polled), the admin reload signal (every worker follows
it through Redis), and the lake table; each change leaves the heap settled again."""

from __future__ import annotations

import asyncio
import gc
import time

from bento.features import LakeFeatures
from bento.models import ModelManager
from bento.store import RedisLink, RedisUnavailable


def settle_heap() -> None:
    """Collect, then freeze what survives (the models, the feature snapshot, the imported libraries) out of the
    cyclic collector's reach: with ~500k long-lived objects a full collection pauses a worker for ~0.4 s, which
    showed up as p99 latency. Called at start and after a model or feature reload."""
    gc.collect()
    gc.freeze()


class Refresher:
    def __init__(self, models: ModelManager, lake: LakeFeatures, redis: RedisLink | None, poll_seconds: float):
        self.models, self.lake, self.redis, self.poll_seconds = models, lake, redis, poll_seconds
        self._token: bytes | None = None

    async def start(self) -> None:
        """Read the reload signal as it is now, so only a later one triggers a check."""
        if self.redis:
            try:
                await self.redis.refresh_meta()
                self._token = await self.redis.reload_token()
            except RedisUnavailable:
                pass

    async def poll(self) -> None:
        """Background task: the registry every `poll_seconds`, the reload signal every second."""
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            due = time.monotonic() - last_check >= self.poll_seconds
            if self.redis and self.redis.up:
                try:
                    token = await self.redis.reload_token()
                    if token != self._token:
                        self._token, due = token, True
                except RedisUnavailable:
                    pass
            if due:
                last_check = time.monotonic()
                await self.refresh()

    async def refresh(self) -> bool:
        """Follow the registry and the lake table; True when the model changed."""
        loop = asyncio.get_running_loop()
        changed = await loop.run_in_executor(None, self.models.check)
        reread = await loop.run_in_executor(None, self.lake.refresh_changed)
        if changed or reread:
            settle_heap()
        return changed

    async def reload(self) -> dict:
        """The admin call: check the registry now, here, and tell the other workers to do the same."""
        before = self.models.current.version if self.models.current else None
        changed = await self.refresh()
        broadcast = False
        if self.redis:
            try:
                await self.redis.signal_reload()
                self._token = await self.redis.reload_token()
                broadcast = True
            except RedisUnavailable:
                pass
        current = self.models.current
        return {
            "changed": changed,
            "previous_version": before,
            "model_version": current.version if current else None,
            "challenger_version": self.models.challenger.version if self.models.challenger else None,
            "other_workers_signalled": broadcast,
            "error": self.models.error,
        }
