"""The project's one retry policy: a few attempts with exponential full-jitter backoff, on tenacity.

The policy is data (attempts, base, cap) so resources expose it as config; `call` / `acall` run a function under it.
A failure may say how long the server asked us to wait: an exception with a `retry_after_s` attribute (e.g. from a
Retry-After header) waits that long instead, capped at `backoff_max_s`. The sleep and the random source are
injectable so tests run instantly and deterministically.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

T = TypeVar("T")
# Called before each wait: (the failed attempt's number, 1-based; its exception; the seconds about to be slept).
OnRetry = Callable[[int, BaseException, float], None]
Retryable = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts (the first included), and how long to back off between them."""

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed `attempt` (1-based): the server's Retry-After if given, else full jitter
        (uniform in [0, min(cap, base * 2^(attempt-1))]: retries of many clients spread out instead of colliding)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max_s)
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_on: Retryable,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_retry: OnRetry | None = None,
    ) -> T:
        """`fn()` until it returns, raises something not in `retry_on`, or the attempts run out (the last error is
        raised as it is, never wrapped)."""
        return Retrying(sleep=sleep, **self._tenacity(retry_on, rng or random.Random(), on_retry))(fn)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_on: Retryable,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_retry: OnRetry | None = None,
    ) -> T:
        """`call` for a coroutine function; waits with `await sleep(...)`."""
        return await AsyncRetrying(sleep=sleep, **self._tenacity(retry_on, rng or random.Random(), on_retry))(fn)

    def _tenacity(self, retry_on: Retryable, rng: random.Random, on_retry: OnRetry | None) -> dict:
        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.delay(state.attempt_number, rng, getattr(error, "retry_after_s", None))

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None and state.next_action is not None:
                on_retry(state.attempt_number, state.outcome.exception(), state.next_action.sleep)

        return {
            "stop": stop_after_attempt(self.max_attempts),
            "wait": wait,
            "retry": retry_if_exception_type(retry_on),
            "before_sleep": before_sleep,
            "reraise": True,
        }
