"""The public pages the service answers itself, ahead of BentoML: a JSON /readyz (BentoML's says only yes or no),
the OpenAPI document with the real request bodies (`bento.openapi`), and an index page that loads no script
(BentoML's loads Google Tag Manager)."""

from __future__ import annotations

import orjson

INDEX = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>stockpred</title></head><body>"
    b"<h1>stockpred prediction service</h1><p>POST /predict, /predict_batch (API key, role reader); "
    b"/admin/reload, /admin/cache/flush (role admin).</p><p><a href='/docs.json'>OpenAPI document</a> &middot; "
    b"<a href='/readyz'>readiness</a> &middot; <a href='/metrics'>metrics</a></p></body></html>"
)
INDEX_HEADERS = [(b"content-type", b"text/html; charset=utf-8"), (b"content-security-policy", b"default-src 'none'")]
JSON = [(b"content-type", b"application/json")]


async def send_answer(send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Pages:
    """Pure ASGI middleware (added with `add_asgi_middleware`); every other path goes on to the app."""

    def __init__(self, app) -> None:
        self.app = app
        self._openapi: bytes | None = None

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in ("/readyz", "/docs.json", "/"):
            return await self.app(scope, receive, send)
        if path == "/readyz":
            import bentoml

            ready, body = bentoml.get_current_service().predictor.readiness()
            return await send_answer(send, 200 if ready else 503, orjson.dumps(body), JSON)
        if path == "/docs.json":
            return await send_answer(send, 200, self.openapi(), JSON)
        return await send_answer(send, 200, INDEX, INDEX_HEADERS)

    def openapi(self) -> bytes:
        if self._openapi is None:
            from bento.openapi import document
            from bento.service import StockPredictor as service  # imported by now: it is what BentoML serves

            inputs = {api.route: (f"{name}__Input", api.input_spec) for name, api in service.apis.items()}
            self._openapi = orjson.dumps(document(service.openapi_spec.asdict(), inputs))
        return self._openapi
