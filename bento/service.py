"""The stockpred prediction service: the MLflow registry's champion behind HTTP.

Routes (POST, JSON): /predict, /predict_batch (role reader), /admin/reload, /admin/cache/flush, /admin/canary (role
admin). Callers: API keys or OAuth2 bearer tokens (`stockpred_core.auth`); a canary share goes to the challenger
(`bento.canary`).
Push (role reader): GET /events (SSE) and /ws/events (WebSocket), `bento.push`. Public: /livez, /readyz, /metrics,
/docs.json and / (`bento.pages`). Keys, roles, rate limits, body limits and the audit log are the gateway's
(`bento.gateway`); features, the cache and the model the predictor's (`bento.predictor`).
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import Field
from starlette.responses import JSONResponse

from bento.audit import AuditSink
from bento.gateway import Gateway
from bento.guard import Guard
from bento.logs import quiet_client_errors
from bento.metrics import Metrics
from bento.pages import Pages
from bento.patches import cancel_request_timers
from bento.predictor import Predictor, RequestError
from bento.push import Relay
from bento.push import app as push_app
from bento.responses import audit_of, batch_answer, error_response, forecast, single_answer
from bento.schemas import (
    BatchPrediction,
    CanaryStatus,
    Explain,
    FlushResult,
    Horizon,
    Prediction,
    ReloadResult,
    Ticker,
)
from bento.security import KeyStore
from stockpred_core.auth import JwtVerifier
from stockpred_core.settings import load_service_settings, load_settings

cancel_request_timers()  # before BentoML builds the app in this worker: see bento.patches


@bentoml.service(
    name="stockpred",
    workers=load_service_settings().workers,  # read at import: the decorator needs it
    traffic={"timeout": 30},
    # A PyTorch champion runs on CUDA when torch sees a GPU (LightGBM and the linear models stay on the CPU).
    resources={"cpu": "2", "memory": "2Gi", "gpu": 1},
)
class StockPredictor:
    """Forecasts for tickers from the registry's champion model, with explanations, cached in Redis."""

    def __init__(self) -> None:
        settings = load_settings()
        quiet_client_errors()
        self.audit = AuditSink(settings.service.audit_log)
        self.metrics = Metrics()
        self.predictor = Predictor(settings, self.metrics, self.audit)
        keys = KeyStore.load(settings.service.api_keys_file, settings.service.api_keys)
        redis, local = self.predictor.redis, self.predictor.local_limiter
        tokens = settings.service.jwt_config()
        jwt = JwtVerifier(tokens) if tokens is not None else None
        self.guard = Guard(keys, settings.service, settings.env, redis, self.metrics, local, jwt)
        self.push = Relay(settings.redis_url, self.metrics)  # GET /events, /ws/events: bento.push
        self.predictor.load()

    @bentoml.on_startup
    async def _start(self) -> None:
        await self.predictor.start()
        await self.push.start()

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        await self.push.stop()
        await self.predictor.stop()

    def __is_ready__(self) -> bool:
        return self.predictor.readiness()[0]

    @bentoml.api(route="/predict")
    async def predict(
        self, ctx: bentoml.Context, ticker: Ticker, horizon: Horizon = None, explain: Explain = True
    ) -> Prediction:
        """Forecast one ticker: predicted return and price, interval, contributions, model version, cache flag."""
        audit_of(ctx)["ticker"] = ticker.strip().upper()
        out, refused = await forecast(ctx, self.predictor, [ticker], horizon, explain)
        return refused or single_answer(ctx, out)

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
        audit_of(ctx)["tickers"] = len(tickers)
        out, refused = await forecast(ctx, self.predictor, tickers, horizon, explain)
        return refused or batch_answer(ctx, out)

    @bentoml.api(route="/admin/reload")
    async def reload(self, ctx: bentoml.Context) -> ReloadResult:
        """Check the registry's champion alias now and swap the model if it moved (every worker follows)."""
        return JSONResponse(await self.predictor.reload())

    @bentoml.api(route="/admin/canary")
    async def canary(
        self,
        ctx: bentoml.Context,
        percent: Annotated[
            float | None,
            Field(ge=0, le=50, description="The challenger's share of clients; leave out to read the state only"),
        ] = None,
    ) -> CanaryStatus:
        """The canary: set the share of clients the registry's challenger answers (clearing a rollback), or read
        its state (each variant's requests, error rate and p99 in this worker's window)."""
        return JSONResponse(await self.predictor.canary.set_percent(percent))

    @bentoml.api(route="/admin/cache/flush")
    async def flush_cache(self, ctx: bentoml.Context) -> FlushResult:
        """Delete every cached prediction."""
        try:
            return JSONResponse(await self.predictor.flush_cache())
        except RequestError as exc:
            return error_response(ctx, exc.status, str(exc))


StockPredictor.mount_asgi_app(push_app(), path="/", name="push")  # after BentoML's routes: only its two paths
StockPredictor.add_asgi_middleware(Pages)  # outermost of ours: the public pages need no key
StockPredictor.add_asgi_middleware(Gateway)
