"""Redis: online features and the prediction cache. Optional outside prod."""

from __future__ import annotations

import dagster as dg
import redis
from pydantic import Field


class RedisResource(dg.ConfigurableResource):
    url: str | None = Field(default=None, description="redis://host:port/db; unset means no Redis")

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def client(self) -> redis.Redis:
        if not self.url:
            raise RuntimeError("Redis is not configured (set STOCKPRED_REDIS_URL)")
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
