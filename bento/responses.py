"""The HTTP answers of the prediction routes, built from the predictor's `Outcome` (JSON bytes, joined as they are)
or from its refusals: 429 with Retry-After, 4xx with a reason, 503 without a model."""

from __future__ import annotations

import asyncio
import logging
import time

import bentoml
import orjson
from starlette.responses import JSONResponse, Response

from bento.canary import CANARY, CHAMPION
from bento.models import NoModel
from bento.prediction_request import Outcome, RequestError
from bento.predictor import Predictor
from bento.rate_limit import RateLimited, too_many_requests
from stockpred_core.redaction import redact

logger = logging.getLogger("bentoml.stockpred")


def error_response(ctx: bentoml.Context, status: int, message: str, model_version: str | None = None) -> Response:
    # BentoML hides the message of 5xx exceptions and wraps 4xx ones in a list; clients get {"error": ...} either way.
    # With a ctx parameter BentoML sets the response status from ctx.response, so it goes there.
    ctx.response.status_code = status
    headers = {"x-model-version": model_version} if model_version else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def audit_of(ctx: bentoml.Context) -> dict:
    """The request's audit fields, which the gateway writes to the audit log once the request ends."""
    return getattr(ctx.request.state, "audit", None) or {}


async def forecast(
    ctx: bentoml.Context, predictor: Predictor, tickers: list[str], horizon, explain: bool
) -> tuple[Outcome | None, Response | None]:
    """(the predictor's outcome, None), or (None, the answer the client gets instead: 429, 4xx or 503).
    The request counts against the key's rate limit once the predictor has charged it."""
    audit = audit_of(ctx)
    try:
        out = await routed(ctx, predictor, audit, tickers, horizon, explain)
    except RateLimited as exc:
        audit["rate_charged"] = True
        status, body, headers = too_many_requests(audit["rate_limit"], exc.wait_seconds)
        ctx.response.status_code = status
        if predictor.metrics is not None:
            predictor.metrics.rate_limited.labels(audit["route"]).inc()
        return None, Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in headers})
    except RequestError as exc:
        return None, error_response(ctx, exc.status, str(exc))
    except NoModel as exc:
        return None, error_response(ctx, 503, str(exc))
    audit["rate_charged"] = True
    audit["model_version"] = out.served.version
    audit["variant"] = out.variant
    return out, None


async def routed(ctx: bentoml.Context, predictor: Predictor, audit: dict, tickers, horizon, explain: bool):
    """The outcome from the variant the client is routed to (`bento.canary`). A canary request that fails on the
    model side or takes longer than the canary's timeout is answered again by the champion. Both variants' latencies
    and failures feed the canary's monitor (a rate limit, a client error or a client that left is no sample)."""
    canary, rate = predictor.canary, audit.get("rate_limit")
    client = audit.get("key_id") or (ctx.request.client.host if ctx.request.client else None)
    challenger = canary.route(client)
    started = time.perf_counter()
    if challenger is not None:
        out = await _canary_outcome(predictor, challenger, tickers, horizon, explain, rate)
        canary.record(CANARY, time.perf_counter() - started, out is None)
        if out is not None:
            canary.served(out)
            return out
        audit["canary_fallback"] = True
        return await predictor.predict(tickers, horizon, explain)  # the rate limit was charged by the canary's call
    watched, failed = canary.percent > 0, True
    try:
        out = await predictor.predict(tickers, horizon, explain, rate)
        failed = out.failed
        canary.served(out)
        return out
    except (RateLimited, RequestError, NoModel, asyncio.CancelledError):
        watched = False  # the client's doing (or it left), or no model at all: no sample of the champion's health
        raise
    finally:
        if watched:
            canary.record(CHAMPION, time.perf_counter() - started, failed)


async def _canary_outcome(predictor: Predictor, challenger, tickers, horizon, explain: bool, rate):
    """The challenger's outcome, or None when it failed or ran past the canary's timeout. Its work is shielded: a
    timeout leaves the computation (which concurrent requests may share) to finish on its own."""
    task = asyncio.ensure_future(predictor.predict(tickers, horizon, explain, rate, challenger))
    try:
        out = await asyncio.wait_for(asyncio.shield(task), predictor.canary.timeout_s)
    except (RateLimited, RequestError):
        raise  # the client's doing, not the canary's: the same for the champion
    except TimeoutError:
        logger.warning(
            "canary v%s took over %g s: the champion answers", challenger.version, predictor.canary.timeout_s
        )
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its outcome is not needed
        return None
    except Exception as exc:
        logger.warning("canary v%s failed: %s", challenger.version, redact(f"{type(exc).__name__}: {exc}"))
        return None
    return None if out.failed else out


def single_answer(ctx: bentoml.Context, out: Outcome) -> Response:
    version = out.served.version
    [name] = out.tickers
    if name in out.errors:
        return error_response(ctx, *out.errors[name], model_version=version)
    audit_of(ctx)["cached"] = out.hits == 1
    headers = {"x-model-version": version, "x-model-variant": out.variant}
    return Response(out.answers[name], media_type="application/json", headers=headers)


def batch_answer(ctx: bentoml.Context, out: Outcome) -> Response:
    served = out.served
    audit_of(ctx)["cached"] = out.hits
    head = orjson.dumps(
        {
            "model_name": served.name,
            "model_version": served.version,
            "horizon_sessions": served.horizon,
            "variant": out.variant,
            "count": len(out.answers),
            "cache_hits": out.hits,
        }
    )
    answers = b",".join(out.answers[t] for t in out.tickers if t in out.answers)
    errors = orjson.dumps([{"ticker": t, "status": s, "error": m} for t, (s, m) in out.errors.items()])
    body = head[:-1] + b',"predictions":[' + answers + b'],"errors":' + errors + b"}"
    headers = {"x-model-version": served.version, "x-model-variant": out.variant}
    return Response(body, media_type="application/json", headers=headers)
