"""Resilience shared by the whole project, pure Python, one of each:

- `rate_limit`: the rate limiter (GCRA), as Redis Lua for the service's single round trip and in process memory;
- `breaker`: the circuit breaker;
- `retry`: the retry policy (exponential full-jitter backoff on tenacity).

Import from the module you need: the package itself imports nothing, so the rate limiter and the breaker do not pull
in tenacity.
"""
