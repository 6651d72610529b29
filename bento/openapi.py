"""The OpenAPI document at /docs.json: BentoML's, corrected to say what the service sends.

BentoML 1.4 writes OpenAPI 3.0 but flattens `X | None` to plain `X` in the answers, documents 400, 404 and 500 only
(with `detail` as a string, while it sends a list) and knows nothing of the gateway's 401/403/413/415/429 or the
handlers' 422/503. Here the request and answer schemas come from the pydantic models themselves (nullable fields as
OpenAPI 3.0's `nullable`), and every status each route can answer is listed with its body and headers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bento.schemas import (
    BatchPrediction,
    CanaryStatus,
    ErrorBody,
    FlushResult,
    InvalidBody,
    Prediction,
    Readiness,
    ReloadResult,
    TooManyRequests,
)

ANSWERS: dict[str, type[BaseModel]] = {
    "/predict": Prediction,
    "/predict_batch": BatchPrediction,
    "/admin/reload": ReloadResult,
    "/admin/cache/flush": FlushResult,
    "/admin/canary": CanaryStatus,
}
REFUSALS = {  # status -> why, for every API route (the body is ErrorBody unless said otherwise)
    "400": "The body is not JSON or a field is invalid",
    "401": "No API key or bearer token, an unknown key, or a refused token (WWW-Authenticate says why)",
    "403": "The key's role or the token's scopes may not call this route",
    "413": "The body is over STOCKPRED_MAX_BODY_BYTES, or too many tickers",
    "415": "The body is not JSON (Content-Type)",
    "422": "A horizon the champion does not serve, or too many tickers to explain",
    "429": "The key's rate limit is spent",
    "500": "An unexpected error (details in the service log only)",
    "503": "No champion model yet, or the cache or features are unavailable",
    "504": "Not answered within the service's timeout",
}
ONLY = {"404": {"/predict"}}  # statuses one route answers: /predict's unknown ticker
HEADER = {"schema": {"type": "string"}, "required": True}
# BentoML's description is a README with badge images from third-party hosts
DESCRIPTION = (
    "Forecasts for tickers from the MLflow registry's champion model, with intervals and explanations. "
    "Send an API key or an OAuth2 access token (`Authorization: Bearer <key or token>`, or a key as `X-API-Key`); "
    'every refusal is `{"error": ...}`.'
)


def _nullable(node: Any) -> Any:
    """pydantic's JSON Schema (2020-12) as OpenAPI 3.0: `anyOf: [X, {type: null}]` -> X with `nullable: true`."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            node.update(rest[0])
        else:
            node["anyOf" if len(rest) > 1 else "allOf"] = rest
        node["nullable"] = True
    if "$ref" in node:
        node["$ref"] = node["$ref"].replace("#/$defs/", "#/components/schemas/")
    return node


def _schema(model: type[BaseModel], components: dict, name: str | None = None) -> dict:
    """A reference to `model` (as `name`, by default its own), its definitions added to `components`."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    for defined, definition in schema.pop("$defs", {}).items():
        components[defined] = _nullable(definition)
    name = name or model.__name__
    components[name] = _nullable(schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def document(bentoml_spec: dict, inputs: dict[str, tuple[str, type[BaseModel]]]) -> dict:
    """The corrected document: `bentoml_spec` is BentoML's (`Service.openapi_spec.asdict()`), `inputs` the name and
    request model of each API route (BentoML calls every one `Input`: `predict__Input` and so on, as it does)."""
    spec = dict(bentoml_spec)
    spec["info"] = {**spec.get("info", {}), "description": DESCRIPTION}
    components: dict[str, Any] = {}
    error, invalid = _schema(ErrorBody, components), _schema(InvalidBody, components)
    refusals = {
        status: _json(why, invalid if status == "400" else error)
        for status, why in REFUSALS.items()
        if status not in ("401", "429")
    }
    refusals["401"] = _json(REFUSALS["401"], error, {"WWW-Authenticate": HEADER})
    refusals["403"] = _json(REFUSALS["403"], error, {"WWW-Authenticate": {**HEADER, "required": False}})
    refusals["429"] = _json(REFUSALS["429"], _schema(TooManyRequests, components), {"Retry-After": HEADER})
    paths = {}
    for path, operations in spec["paths"].items():
        operations = dict(operations)
        if path in ANSWERS and "post" in operations:
            post = dict(operations["post"])
            post["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(inputs[path][1], components, inputs[path][0])}},
            }
            variant = {"X-Model-Version": HEADER, "X-Model-Variant": HEADER}
            answers = {"200": _json("The answer", _schema(ANSWERS[path], components), variant)}
            if path.startswith("/admin/"):
                answers["200"].pop("headers")
            answers.update(refusals)
            answers.update({s: _json("Unknown ticker", error) for s, routes in ONLY.items() if path in routes})
            post["responses"] = dict(sorted(answers.items()))
            operations["post"] = post
        elif path == "/readyz" and "get" in operations:
            readiness = _schema(Readiness, components)
            operations["get"] = {
                **operations["get"],
                "responses": {
                    "200": _json("Ready: a model and features are loaded", readiness),
                    "503": _json("Not ready: `reasons` says why", readiness),
                },
            }
        elif path == "/metrics" and "get" in operations:
            text = {"text/plain": {"schema": {"type": "string"}}}
            operations["get"] = {
                **operations["get"],
                "responses": {"200": {"description": "Prometheus text format", "content": text}},
            }
        paths[path] = operations
    spec["paths"] = paths
    known = dict(spec.get("components") or {})
    spec["components"] = {**known, "schemas": {**known.get("schemas", {}), **dict(sorted(components.items()))}}
    return spec
