"""The project's one rate limiter, circuit breaker and retry policy (stockpred_core.resilience)."""

from __future__ import annotations

import asyncio
import math
import random
import threading

import pytest
import redis

from stockpred_core.resilience.breaker import CircuitBreaker, CircuitOpenError
from stockpred_core.resilience.rate_limit import GCRA_LUA, GCRA_SCRIPT, LocalRateLimiter, interval_us
from stockpred_core.resilience.retry import RetryPolicy

# The Lua function on a caller-given clock, so Redis and the local limiter see the very same instants.
GCRA_AT_SCRIPT = GCRA_LUA + "return gcra_at(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))\n"


@pytest.fixture
def client(redis_url: str):
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/7")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --- Rate limiter --------------------------------------------------------------------------------------------------


def run_together(worker, count: int) -> None:
    """`count` threads running `worker` at once, joined."""
    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _calls(seed: int, n: int = 300) -> list[tuple[float, str, float, int]]:
    """(seconds since start, key, rate per second, burst): bursts, idle gaps and two keys with different limits."""
    rng = random.Random(seed)
    t, calls = 1_000.0, []
    for _ in range(n):
        t += rng.choice([0.0, 0.0, 0.001, 0.05, 0.2, 0.35, 1.0, 3.0])
        key = rng.choice(["alice", "bob"])
        calls.append((round(t, 6), key, {"alice": 2.0, "bob": 7.5}[key], {"alice": 3, "bob": 1}[key]))
    return calls


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_redis_lua_and_local_limiter_admit_and_refuse_alike(client: redis.Redis, seed: int) -> None:
    gcra_at = client.register_script(GCRA_AT_SCRIPT)
    now = [0.0]
    local = LocalRateLimiter(clock=lambda: now[0])
    in_redis, in_process = [], []
    for t, key, rate, burst in _calls(seed):
        now[0] = t
        in_redis.append(gcra_at(keys=[f"rate:{key}"], args=[interval_us(rate), burst, round(t * 1_000_000)]))
        in_process.append(math.ceil(round(local.wait_seconds(key, rate, burst) * 1_000_000) / 1000))
    assert in_redis == in_process  # the same admissions, and the same milliseconds to wait when refused
    refused = sum(1 for wait in in_redis if wait)
    assert 0 < refused < len(in_redis)  # the sequence exercises both answers


def test_redis_clock_and_local_clock_agree_on_a_burst(client: redis.Redis) -> None:
    gcra = client.register_script(GCRA_SCRIPT)
    in_redis = [gcra(keys=["rate:burst"], args=[interval_us(0.5), 3]) for _ in range(5)]
    local = LocalRateLimiter()
    in_process = [local.wait_seconds("burst", 0.5, 3) for _ in range(5)]
    assert in_redis[:3] == [0, 0, 0] and all(1990 <= wait <= 2000 for wait in in_redis[3:])
    assert in_process[:3] == [0, 0, 0] and all(1.99 <= wait <= 2.0 for wait in in_process[3:])
    ttl_ms = client.pttl("rate:burst")
    assert 6_000 < ttl_ms <= 7_000  # the key outlives its TAT by a second, then Redis forgets it


def test_a_refused_request_is_not_charged_and_keys_are_apart() -> None:
    now = [10.0]
    limiter = LocalRateLimiter(clock=lambda: now[0])
    assert limiter.wait_seconds("a", 1.0, 2) == 0.0
    assert limiter.wait_seconds("a", 1.0, 2) == 0.0
    assert limiter.wait_seconds("a", 1.0, 2) == pytest.approx(1.0)
    assert limiter.wait_seconds("a", 1.0, 2) == pytest.approx(1.0)  # refusals do not push the slot further out
    assert limiter.wait_seconds("b", 1.0, 2) == 0.0
    now[0] += 1.0
    assert limiter.wait_seconds("a", 1.0, 2) == 0.0


def test_acquire_reserves_slots_in_order_and_sleeps_until_them() -> None:
    now, slept = [0.0], []
    limiter = LocalRateLimiter(clock=lambda: now[0], sleep=slept.append)  # a sleep that does not move the clock
    waits = [limiter.acquire("k", 4.0, 2) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.25, 0.5, 0.75]) and slept == pytest.approx([0.25, 0.5, 0.75])
    assert limiter.wait_seconds("k", 4.0, 2) == pytest.approx(1.0)  # the reserved slots are spent


def test_local_limiter_admits_exactly_the_burst_across_threads() -> None:
    limiter = LocalRateLimiter(clock=lambda: 5.0)
    admitted: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            admitted.append(limiter.wait_seconds("shared", 1.0, 25) == 0.0)

    run_together(worker, 8)
    assert admitted.count(True) == 25 and len(admitted) == 400


def test_interval_refuses_a_nonpositive_rate() -> None:
    assert (interval_us(2.0), interval_us(3.0), interval_us(1e9)) == (500_000, 333_333, 1)
    with pytest.raises(ValueError, match="rate_per_second must be > 0"):
        interval_us(0)


# --- Circuit breaker ------------------------------------------------------------------------------------------------


def test_breaker_opens_cools_down_and_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_s=10, clock=lambda: now[0])
    breaker.before_request()
    breaker.record_failure()
    breaker.record_success()  # a success in between resets the count
    for _ in range(2):
        breaker.before_request()
        breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 7.5
    with pytest.raises(CircuitOpenError, match=r"after 2 consecutive failed requests; retry in 2\.5s") as caught:
        breaker.before_request()
    assert caught.value.retry_after_s == pytest.approx(2.5)
    now[0] = 10.0
    breaker.before_request()  # the trial
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpenError, match="trial request is already in flight") as caught:
        breaker.before_request()
    assert caught.value.retry_after_s is None
    breaker.abandon_trial()  # never sent: the next request is the trial
    breaker.before_request()
    breaker.record_failure()  # a failed trial opens it for a full cool-down
    assert breaker.state == "open"
    now[0] = 19.9
    with pytest.raises(CircuitOpenError):
        breaker.before_request()
    now[0] = 20.0
    breaker.before_request()
    breaker.record_success()
    assert (breaker.state, breaker.failures) == ("closed", 0)


def test_breaker_lets_exactly_one_trial_through_across_threads() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_s=0, clock=lambda: 0.0)
    breaker.record_failure()
    let_through: list[bool] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        try:
            breaker.before_request()
            let_through.append(True)
        except CircuitOpenError:
            let_through.append(False)

    run_together(worker, 16)
    assert let_through.count(True) == 1 and len(let_through) == 16


def test_provider_circuit_error_is_the_breakers_error() -> None:
    from stockpred_core.io.http_client import CircuitOpenError as ProviderCircuitOpen
    from stockpred_core.io.http_client import ProviderError

    error = ProviderCircuitOpen("open", requests=0)
    assert isinstance(error, CircuitOpenError) and isinstance(error, ProviderError) and error.retry_after_s is None


# --- Retry policy ---------------------------------------------------------------------------------------------------


class Flaky(Exception):
    def __init__(self, retry_after_s: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after_s = retry_after_s


def _failing(*errors: BaseException, result: str = "done"):
    queue, calls = list(errors), []

    def fn() -> str:
        calls.append(1)
        if queue:
            raise queue.pop(0)
        return result

    return fn, calls


def test_retry_retries_the_listed_errors_then_returns() -> None:
    slept, seen = [], []
    fn, calls = _failing(Flaky(), Flaky(retry_after_s=3.0), Flaky(retry_after_s=99.0))
    policy = RetryPolicy(max_attempts=4, backoff_base_s=1.0, backoff_max_s=5.0)
    result = policy.call(
        fn, retry_on=Flaky, sleep=slept.append, rng=random.Random(7), on_retry=lambda *a: seen.append(a)
    )
    assert result == "done" and len(calls) == 4
    assert 0 <= slept[0] <= 1.0 and slept[1:] == [3.0, 5.0]  # jitter, then Retry-After, capped
    assert [(n, type(e), s) for n, e, s in seen] == [(1, Flaky, slept[0]), (2, Flaky, 3.0), (3, Flaky, 5.0)]


def test_retry_gives_up_with_the_last_error_and_never_retries_others() -> None:
    slept: list[float] = []
    last = Flaky()
    fn, calls = _failing(Flaky(), Flaky(), last)
    with pytest.raises(Flaky) as caught:
        RetryPolicy(max_attempts=3).call(fn, retry_on=Flaky, sleep=slept.append)
    assert caught.value is last and len(calls) == 3 and len(slept) == 2
    fn, calls = _failing(KeyError("not retried"), Flaky())
    with pytest.raises(KeyError):
        RetryPolicy(max_attempts=3).call(fn, retry_on=Flaky, sleep=slept.append)
    assert len(calls) == 1 and len(slept) == 2


def test_backoff_is_full_jitter_and_deterministic_with_a_seed() -> None:
    policy = RetryPolicy(max_attempts=8, backoff_base_s=0.5, backoff_max_s=4.0)
    first = [policy.delay(a, random.Random(3)) for a in range(1, 8)]
    assert first == [policy.delay(a, random.Random(3)) for a in range(1, 8)]
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 4.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= ceiling and max(delays) > 0.8 * ceiling


def test_async_retry_uses_the_same_policy() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    errors = [Flaky(retry_after_s=0.25), Flaky(retry_after_s=0.5)]

    async def fn() -> int:
        if errors:
            raise errors.pop(0)
        return 42

    assert asyncio.run(RetryPolicy(max_attempts=3).acall(fn, retry_on=Flaky, sleep=sleep)) == 42
    assert slept == [0.25, 0.5]
