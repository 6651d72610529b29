"""Who may call what, and how fast: API keys or OAuth2 bearer tokens (JWT, `stockpred_core.auth`), roles per route,
the per-caller rate limit (Redis, else this worker)."""

from __future__ import annotations

import asyncio
import logging

import orjson

from bento.rate_limit import Limit, LocalLimiter, too_many_requests
from bento.security import ApiKey, KeyStore, allows
from bento.store import RedisUnavailable
from stockpred_core.auth import JwtVerifier, TokenError, looks_like_jwt

logger = logging.getLogger("bentoml.stockpred")

# route -> the least role that may call it; every other path (probes, /metrics, the OpenAPI docs) is public
ROUTES = {
    "/predict": "reader",
    "/predict_batch": "reader",
    "/admin/reload": "admin",
    "/admin/cache/flush": "admin",
    "/admin/canary": "admin",
}
ANONYMOUS = ApiKey("anonymous", "reader")
# Routes whose rate limit is charged by the handler's Redis lookup (one round trip for both); when a request ends
# before that (an invalid body, say) the gateway charges it afterwards.
CHARGED_BY_HANDLER = {"/predict", "/predict_batch"}
Refusal = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, body, headers
ASK_FOR_KEY = [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="stockpred"')]


def token_refusal(error: TokenError) -> Refusal:
    """A refused bearer token as RFC 6750 answers it: 401 invalid_token or 403 insufficient_scope, the reason in the
    body and in the WWW-Authenticate header."""
    code = "insufficient_scope" if error.status == 403 else "invalid_token"
    detail = error.message.replace('"', "'")
    challenge = f'Bearer realm="stockpred", error="{code}", error_description="{detail}"'.encode()
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", challenge)]
    return error.status, orjson.dumps({"error": error.message}), headers


def json_answer(status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> Refusal:
    return status, orjson.dumps(body), headers or [(b"content-type", b"application/json")]


class Guard:
    def __init__(self, keys: KeyStore, config, env: str, redis=None, metrics=None, local=None, jwt=None) -> None:
        self.keys = keys
        self.config = config
        self.jwt: JwtVerifier | None = jwt
        self.redis = redis
        self.metrics = metrics
        self.local = local or LocalLimiter()
        # Without keys outside prod the service is open to readers (a laptop, the demo); admin always needs a key.
        self.open_to_readers = len(keys) == 0 and jwt is None and env != "prod"
        if len(keys) == 0 and jwt is None:
            logger.warning(
                "no API keys configured (STOCKPRED_API_KEYS_FILE / STOCKPRED_API_KEYS): %s",
                "prediction routes are open, admin routes refused" if self.open_to_readers else "every route refused",
            )

    async def authenticate(self, headers: dict[bytes, bytes]) -> ApiKey | TokenError | str:
        """The caller (an API key, or a bearer token's subject), else why not: "missing", "invalid" (an API key) or
        the TokenError of a refused token."""
        token = headers.get(b"x-api-key")
        if token is None:
            auth = headers.get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                token = auth[7:].strip()
        if token is None:
            return ANONYMOUS if self.open_to_readers else "missing"
        try:
            text = token.decode()
        except UnicodeDecodeError:
            return "invalid"
        if self.jwt is not None and looks_like_jwt(text):
            principal = self.jwt.remembered(text)  # the common case: one digest, no signature check
            if principal is None:
                if self.jwt.needs_keys(text):  # the JWKS fetch (rare, rate-bounded) off the event loop
                    await asyncio.to_thread(self.jwt.prefetch, text)
                try:
                    principal = self.jwt.verify(text, fetch=False)  # never IO on the event loop
                except TokenError as error:
                    return error
            return ApiKey(
                principal.id, principal.role, auth="jwt", subject=principal.subject, expires_at=principal.expires_at
            )
        key = self.keys.authenticate(text)
        return key if key is not None else "invalid"

    def refuse_token(self, error: TokenError, audit: dict) -> Refusal:
        self._refused(error.reason)
        audit["key_id"], audit["auth"] = None, "jwt"
        return token_refusal(error)

    def note_caller(self, key: ApiKey, audit: dict) -> None:
        """Who calls, in the request's audit fields (a token's expiry too, which the audit line leaves out: push
        streams end there)."""
        audit["key_id"], audit["role"], audit["auth"] = key.id, key.role, key.auth
        if key.subject is not None:
            audit["subject"] = key.subject
        if key.expires_at is not None:
            audit["token_expires_at"] = key.expires_at

    def forbidden(self, key: ApiKey, route: str, needed: str) -> Refusal:
        """The 403 of a caller whose role is below `needed`: for a token, with the scope that grants it."""
        self._refused("forbidden")
        if key.auth == "jwt":
            scope = " or ".join(dict(self.jwt.config.role_scopes).get(needed, ()))
            message = f"this token (role {key.role}) may not call {route}: it needs the {needed} role (scope {scope})"
            return token_refusal(TokenError(403, "forbidden", message))
        return json_answer(
            403, {"error": f"this API key (role {key.role}) may not call {route}: it needs the {needed} role"}
        )

    def limit(self, key: ApiKey) -> Limit:
        return key.id, key.rate_per_second or self.config.rate_per_second, key.burst or self.config.rate_burst

    async def wait_seconds(self, limit: Limit) -> float:
        """Charge one request; 0 when it may go ahead, else the seconds to wait (Redis, else this worker's limit)."""
        key_id, rate, burst = limit
        if rate <= 0:
            return 0.0
        if self.redis is not None and self.redis.up:
            try:
                return await self.redis.rate(key_id, rate, burst)
            except RedisUnavailable:
                pass
        return self.local.wait_seconds(key_id, rate, burst)

    async def admit(self, headers: dict[bytes, bytes], route: str, audit: dict) -> Refusal | None:
        """None when the request may go on (its key and role in `audit`), else the answer it gets: 401, 403, 429."""
        needed = ROUTES[route]
        key = await self.authenticate(headers)
        if isinstance(key, TokenError):
            return self.refuse_token(key, audit)
        if isinstance(key, str) or (key is ANONYMOUS and not allows(key.role, needed)):
            if key == "invalid":
                reason, message = key, "invalid API key"
            elif key == "missing":
                reason, message = key, "missing API key: send `Authorization: Bearer <key or token>` or `X-API-Key`"
            else:  # no credentials where the open service needs more than a reader: ask for them (401), not 403
                reason = "missing"
                message = f"missing API key: {route} needs a key with the {needed} role (`Authorization: Bearer <key>`)"
            self._refused(reason)
            audit["key_id"] = None
            return json_answer(401, {"error": message}, ASK_FOR_KEY)
        self.note_caller(key, audit)
        if not allows(key.role, needed):
            return self.forbidden(key, route, needed)
        limit = self.limit(key)
        if limit[1] > 0 and route in CHARGED_BY_HANDLER and self.redis is not None and self.redis.up:
            audit["rate_limit"] = limit  # the handler's lookup charges it
            return None
        wait = await self.wait_seconds(limit)
        if wait > 0:
            if self.metrics is not None:
                self.metrics.rate_limited.labels(route).inc()
            return too_many_requests(limit, wait)
        return None

    def _refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.auth_failures.labels(reason).inc()
