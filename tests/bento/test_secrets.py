"""Secrets stay out of what the service logs and answers (issue 16, defect 1, the service's half), and the gateway
audits the status the client saw when a request times out or the client leaves (defect 6)."""

import asyncio
import json
import logging

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from bento.audit import AuditSink
from bento.gateway import CLIENT_CLOSED, Gateway
from bento.guard import Guard
from bento.models import ModelManager
from bento.patches import cancel_request_timers
from bento.security import ApiKey, KeyStore, hash_key
from bento.store import RedisLink, RedisUnavailable
from stockpred_core.redaction import redact, redact_url
from stockpred_core.settings import load_settings

PASSWORD = "S3cretPW"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:S3cretPW@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://app:S3cretPW@10.0.0.1:6380", "rediss://app:***@10.0.0.1:6380"),
        (
            "postgresql+psycopg2://mlflow:S3cretPW@db/mlflow is down",
            "postgresql+psycopg2://mlflow:***@db/mlflow is down",
        ),
        ("GET https://h/q?function=X&apikey=S3cretPW&symbol=A", "GET https://h/q?function=X&apikey=***&symbol=A"),
        ("redis://h:6379/0?password=S3cretPW", "redis://h:6379/0?password=***"),
        ("header Authorization: Bearer spk_S3cretPWabcdef", "header Authorization: Bearer ***"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),  # nothing to hide: unchanged
        ("http://127.0.0.1:5000/#/experiments", "http://127.0.0.1:5000/#/experiments"),
    ],
)
def test_redaction_masks_credentials_and_keeps_the_rest(text, expected):
    assert redact(text) == expected
    assert redact_url(None) is None
    assert redact("key S3cretPW echoed", secrets=[PASSWORD, None]) == "key *** echoed"


def test_redis_down_is_logged_and_reported_without_its_password(caplog):
    link = RedisLink(f"redis://:{PASSWORD}@127.0.0.1:9/0", timeout=0.2)  # port 9: nothing listens

    async def attempt() -> None:
        try:
            with pytest.raises(RedisUnavailable) as raised:
                await link.call(lambda: link.client.ping())
            assert PASSWORD not in str(raised.value)
        finally:
            await link.close()

    with caplog.at_level(logging.WARNING, logger="bentoml.stockpred"):
        asyncio.run(attempt())
    logged = caplog.text
    assert "redis://:***@127.0.0.1:9/0 is unavailable" in logged
    assert PASSWORD not in logged and PASSWORD not in (link.error or "") and not link.up


def test_a_registry_failure_stays_in_the_log(tmp_path, caplog):
    """The error of a failed load reaches /readyz and 503 bodies: it names no exception, path nor credential."""
    settings = load_settings(
        {
            "STOCKPRED_ENV": "local",
            "STOCKPRED_DATA_DIR": str(tmp_path),
            "STOCKPRED_MLFLOW_TRACKING_URI": f"postgresql://mlflow:{PASSWORD}@127.0.0.1:9/mlflow",
        }
    )
    manager = ModelManager(settings)
    with caplog.at_level(logging.WARNING, logger="bentoml.stockpred"):
        assert manager.check() is False
    assert (
        manager.error
        == f"cannot load the champion of {settings.registered_model} from the model registry (see the service log)"
    )
    assert "cannot load the champion" in caplog.text and PASSWORD not in caplog.text


# -- the audit log records the status the client saw -------------------------------------------------------------


class Service:
    """What `Gateway` reads of the worker's service instance: the guard, the audit sink, metrics (none here)."""

    def __init__(self, tmp_path) -> None:
        token = "spk_test"
        settings = load_settings({"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path)})
        self.keys = {"X-API-Key": token}
        self.guard = Guard(KeyStore({hash_key(token): ApiKey("alice", "reader")}), settings.service, "local")
        self.audit = AuditSink(str(tmp_path / "audit.log"))
        self.metrics = None
        self.path = tmp_path / "audit.log"

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def call(app, core: Service, messages: list[dict]) -> list[dict]:
    """One POST /predict through `app`; the messages the client was sent."""
    sent: list[dict] = []
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)  # a client that sends nothing more

    async def send(message) -> None:
        sent.append(message)

    headers = [
        (b"x-api-key", core.keys["X-API-Key"].encode()),
        (b"content-type", b"application/json"),
        (b"content-length", b"15"),
    ]
    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": headers, "client": ("10.0.0.7", 1)}
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_request_that_times_out_is_audited_as_the_504_the_client_got(tmp_path):
    cancel_request_timers()
    core = Service(tmp_path)

    async def slow_handler(scope, receive, send) -> None:
        await receive()
        await asyncio.sleep(5)

    gateway = Gateway(slow_handler)
    gateway._service = core
    body = {"type": "http.request", "body": b'{"ticker": "A"}', "more_body": False}
    sent = call(TimeoutMiddleware(gateway, timeout=0.2), core, [body])
    assert sent[0]["status"] == 504
    [line] = core.lines()
    assert (line["status"], line["key_id"], line["route"]) == (504, "alice", "/predict")


def test_a_client_that_leaves_mid_body_is_audited_as_gone_not_as_a_server_error(tmp_path):
    core = Service(tmp_path)

    async def handler(scope, receive, send) -> None:  # what BentoML does: read the body, answer 500 when it fails
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        status = 500 if message["type"] == "http.disconnect" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    gateway = Gateway(handler)
    gateway._service = core
    part = {"type": "http.request", "body": b'{"tick', "more_body": True}
    call(gateway, core, [part, {"type": "http.disconnect"}])
    [line] = core.lines()
    assert line["status"] == CLIENT_CLOSED == 499
