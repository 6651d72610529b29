"""The HTTP client providers share: the project's retry policy and circuit breaker (`stockpred_core.resilience`) and
the provider's rate limit and quota (`rate_limit`) around httpx.

No Dagster here: `HttpClient` is plain Python over httpx; `http_settings.HttpSettings` holds the knobs a provider
resource exposes as config fields and builds the client from them.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import httpx

from stockpred_core.redaction import redact, redact_loggers, secrets_in
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.breaker import CircuitOpenError as BreakerOpen
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_resources.providers.base import BadResponseError, CircuitOpenError, ProviderError, TransientError
from stockpred_resources.providers.rate_limit import RateLimiter, Sleep

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO (query API keys and userinfo passwords included), httpcore the server's
# status line and headers at DEBUG.
redact_loggers("httpx", *(f"httpcore.{name}" for name in ("connection", "http11", "http2", "proxy", "socks")))


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

    def __init__(self, what: str, final: type[ProviderError], retry_after_s: float | None = None) -> None:
        super().__init__(what)
        self.what, self.final, self.retry_after_s = what, final, retry_after_s  # RetryPolicy honours retry_after_s


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
        sent = 0

        def attempt() -> Any:
            nonlocal sent
            self._admit()
            sent += 1
            return self._guarded(path, params, request_id)

        def on_retry(attempt: int, failure: BaseException, delay: float) -> None:
            log.warning(
                "%s attempt %d/%d failed (%s); retrying in %.2fs [request %s]",
                what,
                attempt,
                self.retry.max_attempts,
                getattr(failure, "what", failure),
                delay,
                request_id,
            )

        try:
            payload = self.retry.call(attempt, retry_on=_Retryable, sleep=self._sleep, rng=self._rng, on_retry=on_retry)
        except _Retryable as failure:
            final = failure.final(f"{what}: {failure.what}; gave up after {sent} attempts")
            raise self._tag(final, sent, request_id) from None
        except ProviderError as exc:
            raise self._tag(exc, sent, request_id) from None
        return JsonReply(payload, request_id, sent)

    def _admit(self) -> None:
        """Breaker first, then the limiter: a refused request must not spend rate-limit slots or the day's quota."""
        if self.breaker is not None:
            try:
                self.breaker.before_request()
            except BreakerOpen as exc:
                refused = CircuitOpenError(str(exc))
                refused.retry_after_s = exc.retry_after_s
                raise refused from None
        if self.limiter is not None:
            try:
                self.limiter.acquire()
            except ProviderError:
                if self.breaker is not None:
                    self.breaker.abandon_trial()
                raise

    def _guarded(self, path: str, params: Mapping[str, Any] | None, request_id: str) -> Any:
        """One attempt, its outcome told to the breaker."""
        try:
            payload = self._attempt(path, params, request_id)
        except HttpStatusError:
            if self.breaker is not None:
                self.breaker.record_success()  # the service is up; it just refused this request
            raise
        except BaseException:
            if self.breaker is not None:
                self.breaker.record_failure()  # never leave a half-open trial outstanding
            raise
        if self.breaker is not None:
            self.breaker.record_success()
        return payload

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
