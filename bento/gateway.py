"""The ASGI middleware in front of the API routes: API keys and roles, the per-key rate limit (`bento.guard`),
request size and media type, the audit log line.

It runs before BentoML parses a body, so an unauthenticated client learns nothing about the schema, and an oversized
body is refused before it is read whole. Answers of 400 and above pass through it once more: a refused request is
charged to the key's rate limit there (and becomes a 429 when the limit is spent), and BentoML's odd error shapes
are made the one `{"error": ...}` object every other refusal is.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from bento.audit import request_line
from bento.guard import ROUTES, Refusal, json_answer
from bento.pages import send_answer
from bento.patches import TIMED_OUT
from bento.rate_limit import too_many_requests

CLIENT_CLOSED = 499  # audited when the client left before its answer (nginx's "client closed request")


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


class Gateway:
    """Pure ASGI middleware (added with `add_asgi_middleware`); finds the service instance on first use."""

    def __init__(self, app) -> None:
        self.app = app
        self._service = None

    def service(self):
        """The worker's service instance: its `guard`, `predictor`, `metrics` and `audit`."""
        if self._service is None:
            import bentoml

            self._service = bentoml.get_current_service()
        return self._service

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in ROUTES:
            return await self.app(scope, receive, send)
        service = self.service()
        started = time.perf_counter()
        audit: dict = {"route": path, "method": scope["method"]}
        status, answered, left = 500, False, False
        try:
            headers = dict(scope["headers"])
            refusal = await service.guard.admit(headers, path, audit)
            body = None
            if refusal is None:
                body, refusal = await self._read_body(receive, headers, service.guard.config.max_body_bytes)
            if refusal is not None:
                status = refusal[0]
                if status == CLIENT_CLOSED:
                    return None
                return await send_answer(send, *refusal)

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
                    content = b"".join(m.get("body", b"") for m in parts)
                    refused = await self._refused(service, audit, start, content)
                    status, answered = refused[0], True
                    await send_answer(send, *refused)
                return None

            scope.setdefault("state", {})["audit"] = audit
            await self.app(scope, listen, watch)
        except asyncio.CancelledError:
            status = 504 if scope.get(TIMED_OUT) else CLIENT_CLOSED  # the timeout answers 504 after this
            raise
        finally:
            if left:
                status = CLIENT_CLOSED  # it left before the answer: it saw none, whatever the app tried to send
            if "rate_limit" in audit and not audit.get("rate_charged"):
                await service.guard.wait_seconds(audit["rate_limit"])  # ended before any lookup: charge it now
            elapsed = time.perf_counter() - started
            if service.metrics is not None:
                service.metrics.latency.labels(path).observe(elapsed)
            service.audit.write(request_line(scope, audit, status, elapsed))

    async def _refused(self, service, audit: dict, start: dict, body: bytes) -> Refusal:
        """An error answer of the app, as sent: charged to the key's rate limit when nothing charged the request
        yet (a 429 instead once the limit is spent), in the one error shape."""
        if "rate_limit" in audit and not audit.get("rate_charged"):
            audit["rate_charged"] = True
            wait = await service.guard.wait_seconds(audit["rate_limit"])
            if wait > 0:
                if service.metrics is not None:
                    service.metrics.rate_limited.labels(audit["route"]).inc()
                return too_many_requests(audit["rate_limit"], wait)
        body = one_error(body)
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        return start["status"], body, [*headers, (b"content-length", str(len(body)).encode())]

    async def _read_body(self, receive, headers, limit: int) -> tuple[bytes | None, Refusal | None]:
        """(body or None, refusal): a declared length is checked up front and the body streams through (the HTTP
        parser enforces the length); a chunked body is read here, up to the limit."""
        media = headers.get(b"content-type")
        if media is not None and media.split(b";")[0].strip().lower() not in (b"application/json", b""):
            return None, json_answer(
                415, {"error": f"send JSON (Content-Type: application/json), not {media.decode()!r}"}
            )
        declared = headers.get(b"content-length")
        too_big = json_answer(413, {"error": f"request body over {limit} bytes"})
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
