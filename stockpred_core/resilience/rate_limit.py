"""The project's one rate limiter: the generic cell rate algorithm (GCRA), in Redis Lua and in process memory.

GCRA keeps one number per key, the theoretical arrival time (TAT, integer microseconds), so the limit is smooth (a
burst of `burst`, then one request every `1 / rate` seconds) rather than a fixed window's double burst at the boundary.

Hand-written rather than a library (pyrate_limiter, limits): the service charges the caller's limit inside the same
Lua script that looks up the cache, so a request costs one Redis round trip; a library bucket runs its own commands
and would add a round trip per request. `GCRA_LUA` is that script's function, and `LocalRateLimiter` is the same
arithmetic for one process (a worker while Redis is away, and the HTTP providers' per-minute limit).
tests/core/test_resilience.py runs both on the same calls and checks they agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Lua, for EVAL or embedding in a larger script. `gcra(key, interval_us, burst)` reads Redis' clock;
# `gcra_at(key, interval_us, burst, now_us)` takes the time (tests). Both return 0 when the request is admitted (and
# charge it), else the milliseconds to wait (and charge nothing). Microsecond integers are exact in Lua's doubles.
GCRA_LUA = """
local function gcra_at(key, interval, burst, now)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local wait = new_tat - interval * burst - now
  if wait > 0 then return math.ceil(wait / 1000) end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  return 0
end
local function gcra(key, interval, burst)
  local t = redis.call('TIME')
  return gcra_at(key, interval, burst, tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
"""
# A whole script: KEYS[1] the key's TAT; ARGV: interval (microseconds), burst. Returns as `gcra`.
GCRA_SCRIPT = GCRA_LUA + "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n"

_PRUNE_AT = 4096  # keys held before the stale ones are dropped (Redis expires them; memory must too)


def interval_us(rate_per_second: float) -> int:
    """Microseconds between two requests at `rate_per_second` (at least 1)."""
    if rate_per_second <= 0:
        raise ValueError("rate_per_second must be > 0")
    return max(1, round(1_000_000 / rate_per_second))


class LocalRateLimiter:
    """GCRA per key in process memory, thread-safe; the arithmetic of `GCRA_LUA` on an injectable clock (seconds)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._tat: dict[str, int] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, key: str, rate_per_second: float, burst: int = 1) -> float:
        """0.0 when a request may go now (it is charged), else the seconds until it may (nothing is charged)."""
        with self._lock:
            now, interval, tat = self._now_and_tat(key, rate_per_second)
            new_tat = tat + interval
            wait = new_tat - interval * max(1, burst) - now
            if wait > 0:
                return wait / 1_000_000
            self._tat[key] = new_tat
            return 0.0

    def acquire(self, key: str, rate_per_second: float, burst: int = 1) -> float:
        """Take the next slot for `key` and sleep until it comes; returns the seconds slept. Slots are reserved under
        the lock, so concurrent callers queue in order instead of racing for the same slot."""
        with self._lock:
            now, interval, tat = self._now_and_tat(key, rate_per_second)
            new_tat = tat + interval
            self._tat[key] = new_tat
            wait = max(0, new_tat - interval * max(1, burst) - now) / 1_000_000
        if wait > 0:
            self._sleep(wait)
        return wait

    def _now_and_tat(self, key: str, rate_per_second: float) -> tuple[int, int, int]:
        now = round(self._clock() * 1_000_000)
        if len(self._tat) >= _PRUNE_AT:
            self._tat = {k: t for k, t in self._tat.items() if t > now}
        return now, interval_us(rate_per_second), max(self._tat.get(key, 0), now)
