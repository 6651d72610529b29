"""The stockpred prediction service: the MLflow registry's champion behind HTTP.

Routes (POST, JSON): /predict, /predict_batch (role reader), /admin/reload, /admin/cache/flush (role admin).
Public: /livez, /readyz (JSON: ready only with a model and features), /metrics (Prometheus), /docs.json (OpenAPI,
see `bento.openapi`), / (a page of links: BentoML's own loads a third-party tag script).
API keys, roles, rate limits, body limits and the audit log live in `bento.gateway`; features, the cache and the
model in `bento.predictor`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import bentoml
import orjson
from pydantic import Field
from starlette.responses import JSONResponse, Response

from bento.audit import AuditSink
from bento.gateway import Gateway, Guard, rate_limited
from bento.metrics import Metrics
from bento.patches import cancel_request_timers, quiet_client_errors
from bento.predictor import NoModel, Predictor, RateLimited, RequestError
from bento.schemas import BatchPrediction, Explain, FlushResult, Horizon, Prediction, ReloadResult, Ticker
from bento.security import KeyStore
from stockpred_core.settings import load_service_settings, load_settings

logger = logging.getLogger("bentoml.stockpred")
cancel_request_timers()  # before BentoML builds the app in this worker: see bento.patches
quiet_client_errors()
# Read when the module is imported, because the decorator below needs it; the rest is read in __init__.
WORKERS = load_service_settings().workers


def error_response(ctx: bentoml.Context, status: int, message: str, model_version: str | None = None) -> JSONResponse:
    # BentoML hides the message of 5xx exceptions and wraps 4xx ones in a list; clients get {"error": ...} either way.
    # With a ctx parameter BentoML sets the response status from ctx.response, so it goes there.
    ctx.response.status_code = status
    headers = {"x-model-version": model_version} if model_version else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def too_many(ctx: bentoml.Context, core: Core, audit: dict, exc: RateLimited) -> Response:
    status, body, headers = rate_limited(audit["rate_limit"], exc.wait_seconds)
    ctx.response.status_code = status
    if core.metrics is not None:
        core.metrics.rate_limited.labels(audit["route"]).inc()
    return Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in headers})


def _audit(ctx: bentoml.Context) -> dict:
    return getattr(ctx.request.state, "audit", None) or {}


class Core:
    """What one worker holds: the predictor (models, features, cache), the guard (keys, limits), the metrics."""

    def __init__(self) -> None:
        settings = load_settings()
        self.audit = AuditSink(settings.service.audit_log)
        self.metrics = Metrics()
        self.predictor = Predictor(settings, self.metrics, self.audit)
        keys = KeyStore.load(settings.service.api_keys_file, settings.service.api_keys)
        self.guard = Guard(
            keys, settings.service, settings.env, self.predictor.redis, self.metrics, self.predictor.local_limiter
        )
        self.predictor.load()


@bentoml.service(
    name="stockpred",
    workers=WORKERS,
    traffic={"timeout": 30},
    # The deployment asks for a GPU: a PyTorch champion runs on CUDA when torch sees one (LightGBM and the
    # linear models stay on the CPU). Serving on a machine without one just warns.
    resources={"cpu": "2", "memory": "2Gi", "gpu": 1},
)
class StockPredictor:
    """Forecasts for tickers from the registry's champion model, with explanations, cached in Redis."""

    def __init__(self) -> None:
        self.core = Core()

    @bentoml.on_startup
    async def _start(self) -> None:
        await self.core.predictor.start()

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        await self.core.predictor.stop()

    def __is_ready__(self) -> bool:
        return self.core.predictor.readiness()[0]

    async def _forecast(self, ctx: bentoml.Context, audit: dict, tickers: list[str], horizon, explain: bool):
        """(the predictor's answer, None), or (None, the response the client gets instead: 429, 4xx or 503).
        The request counts against the key's rate limit once the predictor has charged it."""
        try:
            out = await self.core.predictor.predict(tickers, horizon, explain, audit.get("rate_limit"))
        except RateLimited as exc:
            audit["rate_charged"] = True
            return None, too_many(ctx, self.core, audit, exc)
        except RequestError as exc:
            return None, error_response(ctx, exc.status, str(exc))
        except NoModel as exc:
            return None, error_response(ctx, 503, str(exc))
        audit["rate_charged"] = True
        audit["model_version"] = out.served.version
        return out, None

    @bentoml.api(route="/predict")
    async def predict(
        self, ctx: bentoml.Context, ticker: Ticker, horizon: Horizon = None, explain: Explain = True
    ) -> Prediction:
        """Forecast one ticker: predicted return and price, interval, contributions, model version, cache flag."""
        audit = _audit(ctx)
        audit["ticker"] = ticker.strip().upper()
        out, refused = await self._forecast(ctx, audit, [ticker], horizon, explain)
        if refused is not None:
            return refused
        version = out.served.version
        [name] = out.tickers
        if name in out.errors:
            return error_response(ctx, *out.errors[name], model_version=version)
        audit["cached"] = out.hits == 1
        return Response(out.answers[name], media_type="application/json", headers={"x-model-version": version})

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        ctx: bentoml.Context,
        tickers: Annotated[list[Ticker], Field(min_length=1, description="Symbols; duplicates are answered once")],
        horizon: Horizon = None,
        explain: Explain = True,
    ) -> BatchPrediction:
        """Forecast many tickers in one call (features read in one round trip, one model call for the misses).
        Unknown tickers are listed in `errors` (status 404) rather than failing the batch."""
        audit = _audit(ctx)
        audit["tickers"] = len(tickers)
        out, refused = await self._forecast(ctx, audit, tickers, horizon, explain)
        if refused is not None:
            return refused
        served = out.served
        audit["cached"] = out.hits
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

    @bentoml.api(route="/admin/reload")
    async def reload(self, ctx: bentoml.Context) -> ReloadResult:
        """Check the registry's champion alias now and swap the model if it moved (every worker follows)."""
        return JSONResponse(await self.core.predictor.reload())

    @bentoml.api(route="/admin/cache/flush")
    async def flush_cache(self, ctx: bentoml.Context) -> FlushResult:
        """Delete every cached prediction."""
        try:
            return JSONResponse(await self.core.predictor.flush_cache())
        except RequestError as exc:
            return error_response(ctx, exc.status, str(exc))


StockPredictor.add_asgi_middleware(Gateway)
