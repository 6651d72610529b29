"""The HTTP answers of the prediction routes, built from the predictor's `Outcome` (JSON bytes, joined as they are)
or from its refusals: 429 with Retry-After, 4xx with a reason, 503 without a model."""

from __future__ import annotations

import bentoml
import orjson
from starlette.responses import JSONResponse, Response

from bento.models import NoModel
from bento.prediction_request import Outcome, RequestError
from bento.predictor import Predictor
from bento.rate_limit import RateLimited, too_many_requests


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
        out = await predictor.predict(tickers, horizon, explain, audit.get("rate_limit"))
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
    return out, None


def single_answer(ctx: bentoml.Context, out: Outcome) -> Response:
    version = out.served.version
    [name] = out.tickers
    if name in out.errors:
        return error_response(ctx, *out.errors[name], model_version=version)
    audit_of(ctx)["cached"] = out.hits == 1
    return Response(out.answers[name], media_type="application/json", headers={"x-model-version": version})


def batch_answer(ctx: bentoml.Context, out: Outcome) -> Response:
    served = out.served
    audit_of(ctx)["cached"] = out.hits
    head = orjson.dumps(
        {
            "model_name": served.name,
            "model_version": served.version,
            "horizon_sessions": served.horizon,
            "count": len(out.answers),
            "cache_hits": out.hits,
        }
    )
    answers = b",".join(out.answers[t] for t in out.tickers if t in out.answers)
    errors = orjson.dumps([{"ticker": t, "status": s, "error": m} for t, (s, m) in out.errors.items()])
    body = head[:-1] + b',"predictions":[' + answers + b'],"errors":' + errors + b"}"
    return Response(body, media_type="application/json", headers={"x-model-version": served.version})
