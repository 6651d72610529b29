"""What the service tests share: the served world, the server and the private redis-server come from the product's
harness (bento.harness, which benchmarks/serving uses too); here, reading the audit log and a client for a started
server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bento.harness.process import serve
from bento.harness.redis_server import free_port, start_redis, wait_for_redis
from bento.harness.world import (
    FEATURE_DATE,
    HORIZON,
    KEYS,
    World,
    build_world,
    fit,
    online_frame,
    register,
    set_alias,
    tickers,
    training_data,
)

__all__ = [
    "FEATURE_DATE",
    "HORIZON",
    "KEYS",
    "Server",
    "World",
    "audit_lines",
    "build_world",
    "fit",
    "free_port",
    "online_frame",
    "register",
    "serve",
    "set_alias",
    "start_redis",
    "tickers",
    "training_data",
    "wait_for_redis",
]


def audit_lines(world: World) -> list[dict]:
    path = world.root / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class Server:
    """A started service as its clients call it: POSTs with a world key (by role) or none; `log` is its log file."""

    def __init__(self, base: str, world: World, log: Path | None = None) -> None:
        self.base, self.world, self.log = base, world, log

    def post(self, path: str, body=None, key: str | None = "reader", **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if key:
            headers["X-API-Key"] = self.world.keys[key]
        return httpx.post(f"{self.base}{path}", json=body, headers=headers, timeout=30, **kwargs)
