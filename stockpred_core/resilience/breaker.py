"""The project's one circuit breaker: closed -> open after consecutive failures -> half-open (one trial) -> closed.

Hand-written rather than pybreaker: pybreaker wraps a call (`breaker.call(f)`) and counts its exceptions, while our
callers need the steps apart: a retry loop records each failed attempt, a 4xx counts as the server being up, a
request refused before it was sent (quota spent) hands its half-open trial back, and tests drive the cool-down with
an injected clock (pybreaker reads the wall clock). It is also synchronous-only; this class holds no I/O, so async
code calls it as it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitOpenError(Exception):
    """Refused without trying: the breaker is open (or its half-open trial is out). `retry_after_s`: the cool-down
    left, None while a trial is in flight."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `reset_s` lets one trial request through.

    Call `before_request()` before each attempt (it raises CircuitOpenError while open), then exactly one of
    `record_success()`, `record_failure()` or `abandon_trial()` (the attempt was never made). Thread-safe.
    """

    def __init__(self, failure_threshold: int, reset_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self.failures = 0
        self.state: State = "closed"
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._lock = threading.Lock()

    def before_request(self) -> None:
        """Raise CircuitOpenError while open (or while the half-open trial is still out)."""
        with self._lock:
            if self.state == "open":
                waited = self._clock() - self._opened_at
                if waited < self.reset_s:
                    left = self.reset_s - waited
                    raise CircuitOpenError(
                        f"circuit open after {self.failures} consecutive failed requests; retry in {left:.1f}s", left
                    )
                self.state, self._trial_in_flight = "half_open", False
            if self.state == "half_open":
                if self._trial_in_flight:
                    raise CircuitOpenError("circuit half-open: a trial request is already in flight")
                self._trial_in_flight = True

    def abandon_trial(self) -> None:
        """The request let through was never sent (e.g. quota spent): let the next one be the trial."""
        with self._lock:
            self._trial_in_flight = False

    def record_success(self) -> None:
        with self._lock:
            self.failures, self.state, self._trial_in_flight = 0, "closed", False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.failure_threshold:
                self.state, self._opened_at, self._trial_in_flight = "open", self._clock(), False
