"""The service's per-key rate limit: the project's GCRA (stockpred_core.resilience.rate_limit) charged in Redis inside
the lookup scripts (bento.redis_scripts) or, while Redis is away, in process memory; and the 429 answer."""

from __future__ import annotations

import math

import orjson

from stockpred_core.resilience.rate_limit import GCRA_LUA, GCRA_SCRIPT, interval_us
from stockpred_core.resilience.rate_limit import LocalRateLimiter as LocalLimiter

__all__ = ["GCRA_LUA", "GCRA_SCRIPT", "RATE_PREFIX", "LocalLimiter", "RateLimited", "interval_us", "too_many_requests"]

RATE_PREFIX = "stockpred:rate:"

Limit = tuple[str, float, int]  # (key id, requests per second, burst)


class RateLimited(RuntimeError):
    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"rate limited for {wait_seconds:.3f} s")
        self.wait_seconds = wait_seconds


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def too_many_requests(limit: Limit, wait: float) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The 429 answer: (status, JSON body, headers)."""
    _, rate, _ = limit  # the key's id stays out of the answer (and out of metric labels): the audit log has it
    body = {"error": f"rate limit of {rate:g} requests/s for this API key exceeded", "retry_after_s": wait}
    headers = [(b"content-type", b"application/json"), (b"retry-after", retry_after_header(wait).encode())]
    return 429, orjson.dumps(body), headers
