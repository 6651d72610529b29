"""The config fields of an HTTP provider resource (timeouts, rate limit, quota, retries, circuit breaker) and the one
client it builds from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, Field, PrivateAttr

from stockpred_core.io.http_client import HttpClient
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_resources.providers.rate_limit import RateLimiter


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
