"""The ASGI middleware in front of the API routes: API keys and roles, the per-key rate limit, request size and
media type, the audit log line; and the JSON /readyz, the OpenAPI document and the index page.

It runs before BentoML parses a body, so an unauthenticated client learns nothing about the schema, and an oversized
body is refused before it is read whole. Answers of 400 and above pass through it once more: a refused request is
charged to the key's rate limit there (and becomes a 429 when the limit is spent), and BentoML's odd error shapes
are made the one `{"error": ...}` object every other refusal is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import orjson

from bento.patches import TIMED_OUT
from bento.security import ApiKey, KeyStore, LocalLimiter, allows, retry_after_header

logger = logging.getLogger("bentoml.stockpred")

# route -> the least role that may call it; every other path (probes, /metrics, the OpenAPI docs) is public
ROUTES = {
    "/predict": "reader",
    "/predict_batch": "reader",
    "/admin/reload": "admin",
    "/admin/cache/flush": "admin",
}
ANONYMOUS = ApiKey("anonymous", "reader")
CLIENT_CLOSED = 499  # audited when the client left before its answer (nginx's "client closed request")
# BentoML's own index page loads Google Tag Manager; this one loads nothing.
INDEX = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>stockpred</title></head><body>"
    b"<h1>stockpred prediction service</h1><p>POST /predict, /predict_batch (API key, role reader); "
    b"/admin/reload, /admin/cache/flush (role admin).</p><p><a href='/docs.json'>OpenAPI document</a> &middot; "
    b"<a href='/readyz'>readiness</a> &middot; <a href='/metrics'>metrics</a></p></body></html>"
)
INDEX_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-security-policy", b"default-src 'none'"),
]
# Routes whose rate limit is charged by the handler's Redis lookup (one round trip for both); when a request ends
# before that (an invalid body, say) the gateway charges it afterwards.
CHARGED_BY_HANDLER = {"/predict", "/predict_batch"}


class Guard:
    """The decisions (who, may they, how fast, how big); `Gateway` applies them to ASGI messages."""

    def __init__(self, keys: KeyStore, config, env: str, redis=None, metrics=None, local=None) -> None:
        self.keys = keys
        self.config = config
        self.redis = redis
        self.metrics = metrics
        self.local = local or LocalLimiter()
        # Without keys outside prod the service is open to readers (a laptop, the demo); admin always needs a key.
        self.open_to_readers = len(keys) == 0 and env != "prod"
        if len(keys) == 0:
            logger.warning(
                "no API keys configured (STOCKPRED_API_KEYS_FILE / STOCKPRED_API_KEYS): %s",
                "prediction routes are open, admin routes refused" if self.open_to_readers else "every route refused",
            )

    def authenticate(self, headers: dict[bytes, bytes]) -> ApiKey | str:
        token = headers.get(b"x-api-key")
        if token is None:
            auth = headers.get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                token = auth[7:].strip()
        if token is None:
            return ANONYMOUS if self.open_to_readers else "missing"
        try:
            key = self.keys.authenticate(token.decode())
        except UnicodeDecodeError:
            key = None
        return key if key is not None else "invalid"

    def limit(self, key: ApiKey) -> tuple[str, float, int]:
        """(key id, requests per second, burst) for a key."""
        return key.id, key.rate_per_second or self.config.rate_per_second, key.burst or self.config.rate_burst

    async def wait_seconds(self, limit: tuple[str, float, int]) -> float:
        """Charge one request; 0 when it may go ahead, else the seconds to wait (Redis, else this worker's limit)."""
        key_id, rate, burst = limit
        if rate <= 0:
            return 0.0
        if self.redis is not None and self.redis.up:
            from bento.store import RedisUnavailable

            try:
                return await self.redis.rate(key_id, rate, burst)
            except RedisUnavailable:
                pass
        return self.local.check(key_id, rate, burst)


def rate_limited(limit: tuple[str, float, int], wait: float) -> tuple[int, bytes, list]:
    _, rate, _ = limit  # the key's id stays out of the answer (and out of metric labels): the audit log has it
    return _json(
        429,
        {"error": f"rate limit of {rate:g} requests/s for this API key exceeded", "retry_after_s": wait},
        [(b"retry-after", retry_after_header(wait).encode())],
    )


def one_error(body: bytes) -> bytes:
    """BentoML answers some 4xx as `[{"error": ...}]`: the object alone, like every other refusal."""
    if body[:1] == b"[":
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if len(items) == 1 and isinstance(items[0], dict) and "error" in items[0]:
            return orjson.dumps(items[0])
    return body


def _json(status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, bytes, list]:
    return status, orjson.dumps(body), [(b"content-type", b"application/json"), *headers]


class Gateway:
    """Pure ASGI middleware (added with `add_asgi_middleware`); finds the service instance on first use."""

    def __init__(self, app) -> None:
        self.app = app
        self._core = None
        self._openapi: bytes | None = None

    def core(self):
        if self._core is None:
            import bentoml

            self._core = bentoml.get_current_service().core
        return self._core

    def openapi(self) -> bytes:
        if self._openapi is None:
            from bento.openapi import document
            from bento.service import StockPredictor as service  # imported by now: it is what BentoML serves

            inputs = {api.route: (f"{name}__Input", api.input_spec) for name, api in service.apis.items()}
            self._openapi = orjson.dumps(document(service.openapi_spec.asdict(), inputs))
        return self._openapi

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/readyz":
            ready, body = self.core().predictor.readiness()
            return await _send(send, *_json(200 if ready else 503, body))
        if path == "/docs.json":
            return await _send(send, 200, self.openapi(), [(b"content-type", b"application/json")])
        if path == "/":
            return await _send(send, 200, INDEX, INDEX_HEADERS)
        needed = ROUTES.get(path)
        if needed is None:
            return await self.app(scope, receive, send)
        core = self.core()
        started = time.perf_counter()
        audit: dict = {"route": path, "method": scope["method"]}
        status, answered, left = 500, False, False
        try:
            headers = dict(scope["headers"])
            refusal = await self._admit(core.guard, headers, needed, audit)
            body = None
            if refusal is None:
                body, refusal = await self._read_body(receive, headers, core.guard.config.max_body_bytes)
            if refusal is not None:
                status = refusal[0]
                if status == CLIENT_CLOSED:
                    return None
                return await _send(send, *refusal)

            async def listen():
                nonlocal body, left
                if body is not None:
                    message, body = {"type": "http.request", "body": body, "more_body": False}, None
                    return message
                message = await receive()
                if message["type"] == "http.disconnect" and not answered:
                    left = True
                return message

            held: list | None = None

            async def watch(message) -> None:
                nonlocal status, answered, held
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if status < 400:  # the hot path: straight through
                        return await send(message)
                    held = [message]
                    return None
                if held is None:
                    answered = answered or not message.get("more_body")
                    return await send(message)
                held.append(message)
                if not message.get("more_body"):
                    start, *parts = held
                    held = None
                    refused = await self._refused(core, audit, start, b"".join(m.get("body", b"") for m in parts))
                    status, answered = refused[0], True
                    await _send(send, *refused)
                return None

            scope.setdefault("state", {})["audit"] = audit
            await self.app(scope, listen, watch)
        except asyncio.CancelledError:
            status = 504 if scope.get(TIMED_OUT) else CLIENT_CLOSED  # BentoML's timeout answers 504 after this
            raise
        finally:
            if left:
                status = CLIENT_CLOSED  # it left before the answer: it saw none, whatever the app tried to send
            if "rate_limit" in audit and not audit.get("rate_charged"):
                await core.guard.wait_seconds(audit["rate_limit"])  # ended before any lookup: charge it now
            elapsed = time.perf_counter() - started
            if core.metrics is not None:
                core.metrics.latency.labels(path).observe(elapsed)
            core.audit.write(_audit_line(scope, audit, status, elapsed))

    async def _refused(self, core, audit: dict, start: dict, body: bytes) -> tuple[int, bytes, list]:
        """An error answer of the app, as sent: charged to the key's rate limit when nothing charged the request
        yet (a 429 instead once the limit is spent), in the one error shape."""
        if "rate_limit" in audit and not audit.get("rate_charged"):
            audit["rate_charged"] = True
            wait = await core.guard.wait_seconds(audit["rate_limit"])
            if wait > 0:
                if core.metrics is not None:
                    core.metrics.rate_limited.labels(audit["route"]).inc()
                return rate_limited(audit["rate_limit"], wait)
        body = one_error(body)
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        return start["status"], body, [*headers, (b"content-length", str(len(body)).encode())]

    async def _admit(self, guard: Guard, headers, needed: str, audit: dict):
        key = guard.authenticate(headers)
        if isinstance(key, str):
            if guard.metrics is not None:
                guard.metrics.auth_failures.labels(key).inc()
            audit["key_id"] = None
            message = (
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                if key == "missing"
                else "invalid API key"
            )
            return _json(401, {"error": message}, [(b"www-authenticate", b'Bearer realm="stockpred"')])
        if key is ANONYMOUS and not allows(key.role, needed):  # no credentials: ask for them (401), not 403
            if guard.metrics is not None:
                guard.metrics.auth_failures.labels("missing").inc()
            audit["key_id"] = None
            message = (
                f"missing API key: {audit['route']} needs a key with the {needed} role (`Authorization: Bearer <key>`)"
            )
            return _json(401, {"error": message}, [(b"www-authenticate", b'Bearer realm="stockpred"')])
        audit["key_id"], audit["role"] = key.id, key.role
        if not allows(key.role, needed):
            if guard.metrics is not None:
                guard.metrics.auth_failures.labels("forbidden").inc()
            return _json(
                403,
                {"error": f"this API key (role {key.role}) may not call {audit['route']}: it needs the {needed} role"},
            )
        limit = guard.limit(key)
        if limit[1] > 0 and audit["route"] in CHARGED_BY_HANDLER and guard.redis is not None and guard.redis.up:
            audit["rate_limit"] = limit  # the handler's lookup charges it
            return None
        wait = await guard.wait_seconds(limit)
        if wait > 0:
            if guard.metrics is not None:
                guard.metrics.rate_limited.labels(audit["route"]).inc()
            return rate_limited(limit, wait)
        return None

    async def _read_body(self, receive, headers, limit: int):
        """(body or None, refusal): a declared length is checked up front and the body streams through (the HTTP
        parser enforces the length); a chunked body is read here, up to the limit."""
        media = headers.get(b"content-type")
        if media is not None and media.split(b";")[0].strip().lower() not in (b"application/json", b""):
            return None, _json(415, {"error": f"send JSON (Content-Type: application/json), not {media.decode()!r}"})
        declared = headers.get(b"content-length")
        too_big = _json(413, {"error": f"request body over {limit} bytes"})
        if declared is not None and declared.isdigit():
            return None, (too_big if int(declared) > limit else None)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, (CLIENT_CLOSED, b"", [])  # nothing to answer: the client is gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None, too_big
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks), None


async def _send(send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _audit_line(scope, audit: dict, status: int, elapsed: float) -> dict:
    client = scope.get("client")
    line = {
        "event": "request",
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "key_id": audit.get("key_id"),
        "role": audit.get("role"),
        "method": audit["method"],
        "route": audit["route"],
        "status": status,
        "latency_ms": round(elapsed * 1000, 3),
        "client": client[0] if client else None,
    }
    for name in ("ticker", "tickers", "cached", "model_version"):
        if name in audit:
            line[name] = audit[name]
    return line
