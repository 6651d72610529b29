"""A fix to BentoML 1.4's request timeout, applied when the service module is imported: kept because nothing
supported replaces it (BentoML always adds its `TimeoutMiddleware`, `traffic.timeout` must be > 0, 1.4.40 still
leaks) and the service loses more than 10% of its cache-hit throughput without it.

Measured with `benchmarks/serving/run.py --saturation-only --timer-fix on|off` (2 workers, 2-core machine shared
with other jobs, load averages 2.9 to 6.6), two back-to-back pairs: /predict cache hits at saturation
[1138, 1203, 1414] and [1566, 1299, 1995] requests/s with the fix, [1426, 1125, 968] and [954, 1177, 994] without:
medians 1357 and 1059, 22% fewer without it (6% and 37% per pair).

BentoML's `TimeoutMiddleware` (bentoml/_internal/server/http/traffic.py, 1.4.x) arms `loop.call_later(timeout, ...)`
for every request and never cancels it. The timer keeps the request's context alive until it fires: the contextvars
hold BentoML's always-recording OpenTelemetry span with its attributes and locks, about 75 objects a request. With
`traffic.timeout` 30 s at 250 requests/s a worker carried ~400,000 such objects, and every full collection of the
cyclic garbage collector walked them: pauses grew to 200+ ms every few seconds, which was the whole p99 of /predict
(measured with gc callbacks in the worker under the serving benchmark's Zipf mix).

The replacement below is the same middleware with the timer cancelled once the request is answered; the behaviour
on a timeout (cancel the handler, answer 504) is unchanged. If a BentoML release changes the middleware's shape the
patch is skipped with a warning, and the service runs on the original.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger("bentoml.stockpred")
TIMED_OUT = "stockpred.timed_out"  # set in the ASGI scope when the timeout cancels the request (the gateway audits 504)


def cancel_request_timers() -> bool:
    """Install the fixed `TimeoutMiddleware.__call__`; True when installed (or already installed)."""
    try:
        from bentoml._internal.server.http import traffic
    except ImportError:
        return False
    middleware = traffic.TimeoutMiddleware
    if getattr(middleware.__call__, "_stockpred_fixed", False):
        return True
    if not callable(getattr(middleware, "_set_timer_out", None)):
        logger.warning("BentoML's TimeoutMiddleware changed shape: request timers are left as they are")
        return False
    JSONResponse = traffic.JSONResponse

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        # An app that fails before answering must not leave the waiter to the timeout (BentoML's does: the client
        # then waits `timeout` seconds for nothing); `await fut` below raises its error at once.
        fut.add_done_callback(lambda _: waiter.done() or waiter.set_result(None))
        try:
            await waiter
        except TimeoutError:
            scope[TIMED_OUT] = True
            if fut.cancel():
                resp = JSONResponse(
                    {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
                )
                await resp(scope, receive, send)
        else:
            timer.cancel()
            await fut  # wait for the future to finish
        finally:
            timer.cancel()

    __call__._stockpred_fixed = True
    middleware.__call__ = __call__
    return True
