"""The ASGI middleware in front of the API routes: API keys and roles, the per-key rate limit, request size and
media type, the audit log line; and the JSON /readyz.

It runs before BentoML parses a body, so an unauthenticated client learns nothing about the schema, and an oversized
body is refused before it is read whole.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson

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
    key_id, rate, _ = limit
    return _json(
        429,
        {"error": f"rate limit of {rate:g} requests/s for key {key_id!r} exceeded", "retry_after_s": wait},
        [(b"retry-after", retry_after_header(wait).encode())],
    )


def _json(status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, bytes, list]:
    return status, orjson.dumps(body), [(b"content-type", b"application/json"), *headers]


class Gateway:
    """Pure ASGI middleware (added with `add_asgi_middleware`); finds the service instance on first use."""

    def __init__(self, app) -> None:
        self.app = app
        self._core = None

    def core(self):
        if self._core is None:
            import bentoml

            self._core = bentoml.get_current_service().core
        return self._core

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/readyz":
            ready, body = self.core().predictor.readiness()
            return await _send(send, *_json(200 if ready else 503, body))
        needed = ROUTES.get(path)
        if needed is None:
            return await self.app(scope, receive, send)
        core = self.core()
        started = time.perf_counter()
        audit: dict = {"route": path, "method": scope["method"]}
        status = 500
        try:
            headers = dict(scope["headers"])
            refusal = await self._admit(core.guard, headers, needed, audit)
            body = None
            if refusal is None:
                body, refusal = await self._read_body(receive, headers, core.guard.config.max_body_bytes)
            if refusal is not None:
                status = refusal[0]
                return await _send(send, *refusal)

            async def replay():
                nonlocal body
                if body is not None:
                    message, body = {"type": "http.request", "body": body, "more_body": False}, None
                    return message
                return await receive()

            receive_body = receive if body is None else replay

            async def watch(message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            scope.setdefault("state", {})["audit"] = audit
            await self.app(scope, receive_body, watch)
        finally:
            if "rate_limit" in audit and not audit.get("rate_charged"):
                await core.guard.wait_seconds(audit["rate_limit"])  # refused before the lookup: charge it now
            elapsed = time.perf_counter() - started
            if core.metrics is not None:
                core.metrics.latency.labels(path).observe(elapsed)
            core.audit.write(_audit_line(scope, audit, status, elapsed))

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
        audit["key_id"], audit["role"] = key.id, key.role
        if not allows(key.role, needed):
            if guard.metrics is not None:
                guard.metrics.auth_failures.labels("forbidden").inc()
            who = "anonymous callers" if key is ANONYMOUS else f"key {key.id!r} (role {key.role})"
            return _json(403, {"error": f"{who} may not call {audit['route']}: it needs the {needed} role"})
        limit = guard.limit(key)
        if limit[1] > 0 and audit["route"] in CHARGED_BY_HANDLER and guard.redis is not None and guard.redis.up:
            audit["rate_limit"] = limit  # the handler's lookup charges it
            return None
        wait = await guard.wait_seconds(limit)
        if wait > 0:
            if guard.metrics is not None:
                guard.metrics.rate_limited.labels(key.id).inc()
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
                return None, _json(400, {"error": "client disconnected"})
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
