"""The fix to BentoML's request timeout (bento.patches): answered requests release their context at once, a slow
one still gets BentoML's 504."""

import asyncio
import contextvars
import gc
import time
import weakref

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from bento.patches import cancel_request_timers

REQUEST = contextvars.ContextVar("request")


class Payload:  # what an outer middleware (OpenTelemetry, in BentoML) keeps in the request's context
    pass


async def answer(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def slow(scope, receive, send) -> None:
    await asyncio.sleep(5)


def run_requests(app, n: int, timeout: float) -> tuple[list[weakref.ref], list[int]]:
    middleware = TimeoutMiddleware(app, timeout=timeout)
    refs: list[weakref.ref] = []
    statuses: list[int] = []

    async def one() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        REQUEST.set(payload)

        async def send(message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        await middleware({"type": "http", "path": "/predict"}, receive, send)

    async def main() -> None:
        await asyncio.gather(*(asyncio.create_task(one()) for _ in range(n)))
        for _ in range(3):  # asyncio drops cancelled timers from its heap on a later turn of the loop
            await asyncio.sleep(0)
        gc.collect()
        statuses.append(sum(ref() is not None for ref in refs))  # still alive while the loop runs

    asyncio.run(main())
    return refs, statuses


def test_answered_requests_release_their_context():
    assert cancel_request_timers() and cancel_request_timers()  # idempotent
    _, statuses = run_requests(answer, 300, timeout=30)
    alive_during_loop = statuses.pop()
    assert statuses == [200] * 300
    assert alive_during_loop == 0  # BentoML's own middleware kept all 300 for 30 s


def test_a_slow_request_still_gets_504():
    cancel_request_timers()
    _, statuses = run_requests(slow, 2, timeout=0.2)
    assert statuses[:2] == [504, 504]


async def broken(scope, receive, send) -> None:
    raise RuntimeError("failed before answering")


def test_an_app_that_fails_before_answering_raises_at_once():
    """BentoML's middleware waited for the timeout (the client hung 30 s for nothing); the error comes out now."""
    cancel_request_timers()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="failed before answering"):
        run_requests(broken, 1, timeout=10)
    assert time.monotonic() - started < 2
