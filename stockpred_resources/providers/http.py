"""The reliability layer HTTP providers share: rate limiting, retries with jittered backoff, a circuit breaker.

No Dagster here: `HttpClient` is plain Python over httpx, and `HttpSettings` is a pydantic mixin holding the knobs a
provider resource exposes as config fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import httpx
from pydantic import BaseModel, Field, PrivateAttr

from stockpred_core.redaction import redact, redact_loggers, secrets_in
from stockpred_resources.providers.base import (
    BadResponseError,
    CircuitOpenError,
    ProviderError,
    QuotaExceededError,
    TransientError,
)

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO (query API keys and userinfo passwords included), httpcore the server's
# status line and headers at DEBUG.
redact_loggers("httpx", *(f"httpcore.{name}" for name in ("connection", "http11", "http2", "proxy", "socks")))

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class RateLimiter:
    """A token bucket of `requests_per_minute`, plus an optional per-day cap that raises instead of waiting."""

    def __init__(
        self,
        requests_per_minute: float,
        requests_per_day: int | None = None,
        *,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        today: Callable[[], dt.date] = _utc_today,
    ) -> None:
        if requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be > 0")
        self.rate = requests_per_minute / 60.0  # tokens per second
        self.capacity = float(max(1, burst))
        self.requests_per_day = requests_per_day
        self._clock, self._sleep, self._today = clock, sleep, today
        self._tokens = self.capacity
        self._updated = clock()
        self._day = today()
        self._spent_day: dt.date | None = None
        self.used_today = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for a token; raise QuotaExceededError when today's cap is spent (waiting would take hours)."""
        with self._lock:
            self._roll_day()
            if self._spent_day == self._day:
                raise QuotaExceededError(f"the server reported today's quota spent ({self._day}); resets tomorrow")
            if self.requests_per_day is not None and self.used_today >= self.requests_per_day:
                raise QuotaExceededError(
                    f"daily request cap of {self.requests_per_day} spent for {self._day}; resets at midnight UTC"
                )
            self._refill()
            if self._tokens < 1:
                self._sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
            self.used_today += 1

    def exhaust_today(self) -> None:
        """The server says today's quota is spent: refuse the rest of the day without asking it again."""
        with self._lock:
            self._roll_day()
            self._spent_day = self._day

    def _roll_day(self) -> None:
        if self._today() != self._day:
            self._day, self.used_today = self._today(), 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failed requests; after `reset_s` lets one trial request through."""

    def __init__(self, failure_threshold: int, reset_s: float, *, clock: Clock = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self.failures = 0
        self.state = "closed"  # closed | open | half_open
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._lock = threading.Lock()

    def before_request(self) -> None:
        """Raise CircuitOpenError while open (or while the half-open trial is still out)."""
        with self._lock:
            if self.state == "open":
                waited = self._clock() - self._opened_at
                if waited < self.reset_s:
                    raise CircuitOpenError(
                        f"circuit open after {self.failures} consecutive failed requests; "
                        f"retry in {self.reset_s - waited:.1f}s"
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


class RetryPolicy(NamedTuple):
    """How many attempts, and how long to back off between them (exponential with full jitter)."""

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed `attempt` (1-based): the server's Retry-After if given, else full jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max_s)
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))


class JsonReply(NamedTuple):
    payload: Any
    request_id: str
    attempts: int


class HttpStatusError(BadResponseError):
    """A 4xx other than 429: the server answered and would answer the same again, so it is not retried."""

    def __init__(self, message: str, status: int, text: str) -> None:
        super().__init__(message)
        self.status, self.text = status, text


class _Retryable(Exception):
    """One failed attempt worth retrying; `final` is the error class to raise when attempts run out."""

    def __init__(self, what: str, final: type[ProviderError], retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what, self.final, self.retry_after = what, final, retry_after


class _Unretryable(BadResponseError):
    """The request failed in a way another attempt would repeat."""

    retryable = False


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to our own backoff


class HttpClient:
    """GETs JSON through the limiter, the breaker and the retry policy; every error it raises carries `requests`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.limiter, self.breaker = limiter, breaker
        self._secrets = [s for s in (*secrets, *secrets_in(base_url)) if s]
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(timeout_s), headers=dict(headers or {}), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def redact(self, text: str) -> str:
        """The text with every configured secret (API keys, the base URL's password) and secret-looking URL parts
        masked, for messages and logs."""
        return redact(text, self._secrets)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> JsonReply:
        """One logical GET, retried as the policy allows; raises a ProviderError subclass when it cannot succeed."""
        request_id = uuid.uuid4().hex
        what = f"GET {path}"  # never the query string: it may hold an API key
        attempts = 0
        while True:
            # Breaker first: a refused request must not spend rate-limit tokens or the day's quota.
            try:
                if self.breaker is not None:
                    self.breaker.before_request()
                if self.limiter is not None:
                    try:
                        self.limiter.acquire()
                    except ProviderError:
                        if self.breaker is not None:
                            self.breaker.abandon_trial()
                        raise
            except ProviderError as exc:
                raise self._tag(exc, attempts, request_id) from None
            attempts += 1
            try:
                payload = self._attempt(path, params, request_id)
            except _Retryable as failure:
                if self.breaker is not None:
                    self.breaker.record_failure()
                if attempts >= self.retry.max_attempts:
                    final = failure.final(f"{what}: {failure.what}; gave up after {attempts} attempts")
                    raise self._tag(final, attempts, request_id) from None
                delay = self.retry.delay(attempts, self._rng, failure.retry_after)
                log.warning(
                    "%s attempt %d/%d failed (%s); retrying in %.2fs [request %s]",
                    what,
                    attempts,
                    self.retry.max_attempts,
                    failure.what,
                    delay,
                    request_id,
                )
                self._sleep(delay)
                continue
            except HttpStatusError as exc:
                if self.breaker is not None:
                    self.breaker.record_success()  # the service is up; it just refused this request
                raise self._tag(exc, attempts, request_id) from None
            except ProviderError as exc:
                if self.breaker is not None:
                    self.breaker.record_failure()
                raise self._tag(exc, attempts, request_id) from None
            except BaseException:
                if self.breaker is not None:
                    self.breaker.record_failure()  # never leave a half-open trial outstanding
                raise
            if self.breaker is not None:
                self.breaker.record_success()
            return JsonReply(payload, request_id, attempts)

    def _attempt(self, path: str, params: Mapping[str, Any] | None, request_id: str) -> Any:
        # Errors are re-raised `from None`: httpx exceptions carry the full URL, API key included.
        try:
            response = self._http.get(path, params=params, headers={"X-Request-ID": request_id})
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})", TransientError) from None
        except httpx.TransportError as exc:
            raise _Retryable(self.redact(f"connection failed ({type(exc).__name__}: {exc})"), TransientError) from None
        except httpx.DecodingError as exc:
            raise _Retryable(self.redact(f"undecodable body ({exc})"), BadResponseError) from None
        except httpx.HTTPError as exc:  # e.g. too many redirects: retrying will not help
            raise _Unretryable(self.redact(f"GET {path}: {type(exc).__name__}: {exc}")) from None
        status = response.status_code
        if status == 429:
            raise _Retryable("HTTP 429 Too Many Requests", TransientError, _retry_after(response))
        if status >= 500:
            what = self.redact(f"HTTP {status} {response.reason_phrase}")  # the phrase is the server's text
            raise _Retryable(what, TransientError, _retry_after(response))
        if status >= 400:
            text = self.redact(response.text[:500])
            raise HttpStatusError(f"GET {path}: HTTP {status}: {text}", status, text)
        try:
            return json.loads(response.content)
        except ValueError:
            kind = "truncated JSON" if response.content.lstrip()[:1] in (b"{", b"[") else "non-JSON"
            snippet = self.redact(response.text[:80]).replace("\n", " ")
            raise _Retryable(f"{kind} body ({len(response.content)} bytes: {snippet!r})", BadResponseError) from None

    @staticmethod
    def _tag(exc: ProviderError, requests: int, request_id: str) -> ProviderError:
        exc.requests = requests  # MarketDataProvider.fetch_bars reports it as the cost of the failure
        exc.request_id = request_id
        return exc


class HttpSettings(BaseModel):
    """Config fields of an HTTP provider resource, and its lazily built client (runtime state, not config)."""

    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of every HTTP request, in seconds")
    requests_per_minute: float = Field(default=60.0, gt=0, description="Client-side rate limit")
    requests_per_day: int | None = Field(default=None, ge=0, description="Daily request cap; None means no cap")
    max_attempts: int = Field(default=4, ge=1, description="Attempts per request, the first included")
    backoff_base_s: float = Field(default=0.5, ge=0, description="First retry waits up to this; doubles per attempt")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest wait between attempts (caps Retry-After)")
    circuit_failure_threshold: int = Field(default=5, ge=1, description="Consecutive failed requests that open it")
    circuit_reset_s: float = Field(default=60.0, ge=0, description="Seconds the open circuit refuses requests")

    _client: HttpClient | None = PrivateAttr(default=None)

    def http_client(
        self, base_url: str, *, headers: Mapping[str, str] | None = None, secrets: Iterable[str] = ()
    ) -> HttpClient:
        """This resource's client, built on first use and shared by all its requests (one breaker, one limiter)."""
        if self._client is None:
            self._client = HttpClient(
                base_url,
                timeout_s=self.timeout_s,
                retry=RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s),
                limiter=RateLimiter(self.requests_per_minute, self.requests_per_day),
                breaker=CircuitBreaker(self.circuit_failure_threshold, self.circuit_reset_s),
                headers=headers,
                secrets=secrets,
            )
        return self._client

    def close_http(self) -> None:
        """Close the client's connections (a resource's teardown); the next request builds a fresh client."""
        if self._client is not None:
            self._client.close()
            self._client = None
