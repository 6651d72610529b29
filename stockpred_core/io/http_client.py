"""The project's one HTTP client: JSON GETs for market-data APIs and POSTs for notifications (`post`), through the
project's retry policy and circuit breaker (`stockpred_core.resilience`) and a rate limiter, around httpx; and the
errors a provider raises.

Pure Python (no Dagster): the Dagster provider resources (`stockpred_resources.providers`) and the intraday stream's
live source (`stream.sources.yahoo_live`) use the same client. The limiter is anything with `acquire()`: the
providers' `RateLimiter` (pace and daily quota) or a pace on `LocalRateLimiter`.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import httpx

from stockpred_core.redaction import redact, redact_loggers, secrets_in
from stockpred_core.resilience import breaker as _breaker
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.breaker import CircuitOpenError as BreakerOpen
from stockpred_core.resilience.retry import RetryPolicy

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO (query API keys and userinfo passwords included), httpcore the server's
# status line and headers at DEBUG.
redact_loggers("httpx", *(f"httpcore.{name}" for name in ("connection", "http11", "http2", "proxy", "socks")))

Sleep = Callable[[float], None]


class ProviderError(Exception):
    """A ticker could not be fetched; `kind` says why and `retryable` whether a later run may succeed. The message is
    redacted (URL passwords, API key parameters) as it is made: it reaches logs, metadata and the dead letters."""

    kind = "provider_error"
    retryable = True

    def __init__(self, message: str = "", *, requests: int = 1, request_id: str | None = None) -> None:
        super().__init__(redact(message))
        self.requests = requests  # HTTP requests spent on the ticker, retries included
        self.request_id = request_id


class UnknownTickerError(ProviderError):
    kind, retryable = "unknown_ticker", False


class QuotaExceededError(ProviderError):
    """The provider's request quota (e.g. Alpha Vantage's 25 a day) is spent; retry after it resets."""

    kind, retryable = "quota", True


class TransientError(ProviderError):
    """429, 5xx, timeouts, connection resets that outlived the retries."""

    kind, retryable = "transient", True


class BadResponseError(ProviderError):
    """A body that is truncated, not JSON, or not shaped as the API documents."""

    kind, retryable = "bad_response", True


class CircuitOpenError(ProviderError, _breaker.CircuitOpenError):
    """Too many consecutive failures: requests are refused until the breaker's cool-down ends (the project's breaker,
    `stockpred_core.resilience.breaker.CircuitBreaker`, as a ProviderError)."""

    kind, retryable = "circuit_open", True


class Limiter(Protocol):
    """Waits for the next request slot (or raises a ProviderError, e.g. QuotaExceededError)."""

    def acquire(self) -> None: ...


class JsonReply(NamedTuple):
    payload: Any
    request_id: str
    attempts: int


class HttpReply(NamedTuple):
    """What `HttpClient.post` or `get_document` got: the status (2xx or 3xx), the body, its JSON or None."""

    status: int
    body: bytes
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
        limiter: Limiter | None = None,
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
        payload, request_id, sent = self._call(f"GET {path}", lambda rid: self._guarded(path, params, rid))
        return JsonReply(payload, request_id, sent)

    def get_document(self, path: str, what: str | None = None) -> HttpReply:
        """One logical GET of a body that is not JSON (an XML filing, a CSV), retried, rate-limited and counted by
        the breaker as `get_json` is; `path` may be a whole URL (another host of the same service). A 4xx other than
        429 raises HttpStatusError at once. Raises a ProviderError subclass."""
        what = what or f"GET {path}"

        def send(request_id: str) -> HttpReply:
            request = {"headers": {"X-Request-ID": request_id}}
            return self._guarded(path, None, request_id, method="GET", request=request, what=what)

        reply, request_id, sent = self._call(what, send)
        return reply._replace(request_id=request_id, attempts=sent)

    def post(
        self,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        what: str | None = None,
    ) -> HttpReply:
        """One logical POST of a JSON body, a form or raw `content` (give its Content-Type), retried as the policy
        allows (5xx, 429, timeouts, resets); a 4xx other than 429 raises HttpStatusError at once. `path` may be a
        whole URL (a webhook's); `what` names the request in errors and logs instead of it (a webhook URL is a
        secret). Raises a ProviderError subclass."""
        what = what or f"POST {path}"
        if content is not None:
            body: dict[str, Any] = {"content": content}
        else:
            body = {"json": json_body} if form is None else {"data": dict(form)}

        def send(request_id: str) -> HttpReply:
            request = {**body, "headers": {**(headers or {}), "X-Request-ID": request_id}, "auth": auth}
            return self._guarded(path, None, request_id, method="POST", request=request, what=what)

        reply, request_id, sent = self._call(what, send)
        return reply._replace(request_id=request_id, attempts=sent)

    def _call(self, what: str, send: Callable[[str], Any]) -> tuple[Any, str, int]:
        """`send(request_id)` under the breaker, the limiter and the retry policy: (result, request id, attempts)."""
        request_id = uuid.uuid4().hex
        sent = 0

        def attempt() -> Any:
            nonlocal sent
            self._admit()
            sent += 1
            return send(request_id)

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
        return payload, request_id, sent

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

    def _guarded(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        request_id: str,
        *,
        method: str = "GET",
        request: Mapping[str, Any] | None = None,
        what: str | None = None,
    ) -> Any:
        """One attempt, its outcome told to the breaker."""
        try:
            if method == "GET" and request is None:  # a JSON API call (get_json)
                payload = self._attempt(path, params, request_id)
            else:
                payload = self._attempt_send(method, path, request or {}, what or f"{method} {path}")
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

    def _attempt_send(self, method: str, path: str, request: Mapping[str, Any], what: str) -> HttpReply:
        """One request other than a JSON GET; errors name `what`, never the URL."""
        try:
            response = self._http.request(method, path, **request)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})", TransientError) from None
        except httpx.TransportError as exc:
            raise _Retryable(self.redact(f"connection failed ({type(exc).__name__})"), TransientError) from None
        except httpx.HTTPError as exc:
            raise _Unretryable(self.redact(f"{what}: {type(exc).__name__}")) from None
        status = response.status_code
        if status == 429:
            raise _Retryable("HTTP 429 Too Many Requests", TransientError, _retry_after(response))
        if status >= 500:
            phrase = self.redact(f"HTTP {status} {response.reason_phrase}")
            raise _Retryable(phrase, TransientError, _retry_after(response))
        if status >= 400:
            text = self.redact(response.text[:500])
            raise HttpStatusError(f"{what}: HTTP {status}: {text}", status, text)
        try:
            payload = json.loads(response.content) if response.content else None
        except ValueError:
            payload = None
        return HttpReply(status, response.content, payload, "", 0)

    @staticmethod
    def _tag(exc: ProviderError, requests: int, request_id: str) -> ProviderError:
        exc.requests = requests  # MarketDataProvider.fetch_bars reports it as the cost of the failure
        exc.request_id = request_id
        return exc
