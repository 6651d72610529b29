"""Request fields and response models of the prediction service (the OpenAPI document at /docs.json).

Request fields are strict: JSON `true` is no horizon and `"yes"` no boolean (pydantic's lax mode read them as 1 and
true), so what the document says is what the service accepts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

TICKER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-^=_/]{0,19}$"
Ticker = Annotated[
    StrictStr,
    Field(description="Symbol, case-insensitive (e.g. S00042, BRK.B)", pattern=TICKER_PATTERN, max_length=20),
]
Horizon = Annotated[
    StrictInt | None,
    Field(description="Sessions ahead; must equal the champion's horizon (default: that horizon)", ge=1, le=260),
]
Explain = Annotated[StrictBool, Field(description="Include the top feature contributions (SHAP for LightGBM)")]


class Contribution(BaseModel):
    feature: str
    value: float | None = Field(description="The feature's value in the vector used (null when missing)")
    contribution: float = Field(
        description="Its additive contribution to the prediction (TreeSHAP for LightGBM, occlusion otherwise)"
    )


class Prediction(BaseModel):
    ticker: str
    cached: bool = Field(description="Served from the prediction cache")
    features_source: str = Field(description="Where the feature vector came from: redis, lake, or cache")
    stale: bool = Field(description="The feature vector is older than the latest one or than the age limit")
    stale_reason: str | None
    feature_age_sessions: int | None = Field(description="Sessions closed since the feature date")
    variant: str = Field(description="champion, or canary: the registry's challenger answered (a canary share)")
    model_name: str
    model_version: str
    model_family: str
    label: str = Field(description="return: predictions are forward returns; rank: cross-sectional scores")
    horizon_sessions: int
    prediction: float = Field(description="The model's output (a return, or a score when label is rank)")
    predicted_return: float | None = Field(description="Forecast return over the horizon (null for rank models)")
    predicted_price: float | None = Field(description="Last close compounded by the predicted return")
    interval_low: float = Field(description="Lower bound of the interval of the prediction (held-out residuals)")
    interval_high: float = Field(description="Upper bound of the interval")
    interval_level: float = Field(description="Nominal coverage of the interval")
    price_interval_low: float | None
    price_interval_high: float | None
    last_close: float
    feature_date: str = Field(description="Session date of the feature vector (YYYY-MM-DD)")
    feature_set_version: str
    explained: bool
    top_contributions: list[Contribution]
    note: str | None


class TickerError(BaseModel):
    ticker: str
    status: int
    error: str


class BatchPrediction(BaseModel):
    model_name: str
    model_version: str
    horizon_sessions: int
    variant: str = Field(description="champion, or canary (the challenger answered every ticker)")
    count: int
    cache_hits: int
    predictions: list[Prediction]
    errors: list[TickerError] = Field(description="Tickers without an answer (unknown: 404)")


class ReloadResult(BaseModel):
    changed: bool
    previous_version: str | None
    model_version: str | None
    challenger_version: str | None
    other_workers_signalled: bool
    error: str | None


class VariantStats(BaseModel):
    requests: int = Field(description="Requests in this worker's window")
    error_rate: float | None
    p99_ms: float | None


class CanaryStatus(BaseModel):
    percent: float = Field(description="The share of clients the challenger answers now (0 when inactive)")
    configured_percent: float = Field(description="STOCKPRED_CANARY_PERCENT")
    champion_version: str | None
    challenger_version: str | None
    inactive_reason: str | None = Field(description="Why the canary takes no traffic (no challenger, rolled back)")
    variants: dict[str, VariantStats]


class FlushResult(BaseModel):
    deleted: int
    cache: str


class ErrorBody(BaseModel):
    """Every refusal: 401, 403, 404, 413, 415, 422, 500, 503, 504."""

    error: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where in the body: field names and list positions")
    msg: str
    type: str


class InvalidBody(BaseModel):
    """400: the body is not JSON, or a field is missing, of the wrong type or out of range."""

    error: str
    detail: list[FieldError] | None = Field(
        default=None, description="One entry per invalid field (absent when the body is not JSON)"
    )


class TooManyRequests(BaseModel):
    """429: the API key's rate limit is spent; retry after `retry_after_s` (also the Retry-After header)."""

    error: str
    retry_after_s: float


class Readiness(BaseModel):
    """GET /readyz: 200 when a model and features are loaded, else 503 with the reasons."""

    ready: bool
    reasons: list[str]
