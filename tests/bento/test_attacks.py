"""The attacks of issue 16 (defect 6 and the newcomer's path), replayed over real HTTP against `bentoml serve`: a
flood of invalid bodies, a client that leaves mid-body, lax types, what /metrics, /, /readyz and error bodies reveal,
an anonymous admin call, and the OpenAPI document checked against every answer by schemathesis."""

import socket
import time
from pathlib import Path

import httpx
import mlflow
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.service import Server, audit_lines, build_world, serve

pytestmark = pytest.mark.slow

KEYS = {"reader": ("reader", 10_000.0), "admin": ("admin", 10_000.0), "two-per-second": ("reader", 2.0)}
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_url):
    root = tmp_path_factory.mktemp("attacks")
    world = build_world(root / "world", 30, redis_url.rsplit("/", 1)[0] + "/6", keys=KEYS)
    log = root / "bento.log"
    with serve(world.env, log) as base:
        yield Server(base, world, log)


def test_invalid_bodies_count_against_the_rate_limit(server):
    """200 invalid bodies from a key limited to 2 requests/s: after its burst they get 429, not 400."""
    bodies = [{"symbol": "T00001"}, {"ticker": "T00001", "horizon": 99}]  # a 400 and a 422 (unserved horizon)
    started = time.monotonic()
    answers = [server.post("/predict", bodies[i % 2], key="two-per-second") for i in range(30)]
    statuses = [answer.status_code for answer in answers]
    allowed = 2 + 2 * (time.monotonic() - started) + 1  # the burst, then 2 a second
    assert set(statuses) == {400, 422, 429} and len(statuses) - statuses.count(429) <= allowed, statuses
    limited = next(answer for answer in answers if answer.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1 and limited.json()["retry_after_s"] > 0
    assert "two-per-second" not in limited.text


def test_a_client_error_is_one_log_line_without_traceback(server):
    before = server.log.read_text()
    for body in ({"symbol": "T00001"}, {"ticker": "bad ticker!"}, {"ticker": "T00001", "horizon": "soon"}):
        assert server.post("/predict", body).status_code == 400
    not_json = server.post("/predict", content=b"not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["detail"][0]["type"] == "json_invalid"
    time.sleep(0.5)
    new = server.log.read_text()[len(before) :]
    assert "Traceback" not in new and "ERROR" not in new, new[-3000:]
    assert new.count("invalid body") == 4 and "ticker: Field required" in new


def test_strict_types_refuse_what_lax_mode_coerced(server):
    assert server.post("/predict", {"ticker": "T00002", "horizon": True}).status_code == 400
    assert server.post("/predict", {"ticker": "T00002", "explain": "yes"}).status_code == 400
    assert server.post("/predict", {"ticker": "T00002", "horizon": 5.0}).status_code == 400
    assert server.post("/predict_batch", {"tickers": ["T00002"], "explain": 1}).status_code == 400
    assert server.post("/predict", {"ticker": "T00002", "horizon": 5, "explain": False}).status_code == 200


def test_a_client_that_leaves_mid_body_is_audited_as_gone(server):
    host, port = server.base.removeprefix("http://").split(":")
    request = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n"
        f"X-API-Key: {server.world.keys['reader']}\r\n\r\n"
    ).encode() + b'{"ticker": "T0'
    before = server.log.read_text()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [x for x in audit_lines(server.world) if x["event"] == "request" and x["route"] == "/predict"]
        if lines and lines[-1]["status"] in (499, 500):
            break
        time.sleep(0.2)
    assert lines[-1]["status"] == 499, lines[-1]
    assert "Traceback" not in server.log.read_text()[len(before) :]


def test_public_answers_and_labels_name_no_key(server):
    server.post("/predict", {"ticker": "T00003"}, key="two-per-second")
    for _ in range(5):
        server.post("/predict", {"ticker": "T00003"}, key="two-per-second")
    forbidden = server.post("/admin/reload", {}, key="reader")
    assert forbidden.status_code == 403 and "reader'" not in forbidden.text
    metrics = httpx.get(f"{server.base}/metrics").text
    assert "stockpred_rate_limited_total{" in metrics
    assert "key_id" not in metrics and all(f'"{key}"' not in metrics for key in KEYS)


def test_the_index_page_loads_no_third_party_script(server):
    page = httpx.get(f"{server.base}/")
    assert page.status_code == 200 and "/docs.json" in page.text
    assert "<script" not in page.text.lower() and "googletagmanager" not in page.text
    assert page.headers["content-security-policy"] == "default-src 'none'"


def test_the_openapi_document_matches_every_answer(server):
    """Schemathesis, valid and invalid cases for every operation, with response conformance checks: the statuses,
    media types, headers and bodies the service sends are the ones its document declares."""
    schema = schemathesis.openapi.from_url(f"{server.base}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    calls: list[tuple[str, int]] = []
    for key in ("admin", "two-per-second"):  # with a key at its rate limit too: 429s are answers as well
        for operation in operations:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                run_cases(server, operation, mode, {"X-API-Key": server.world.keys[key]}, calls)
    statuses = {status for path, status in calls if path == "/predict"}
    assert statuses >= {400, 404, 429}, statuses
    # What random bodies rarely reach: answers for known tickers, the gateway's refusals, the probes
    by_path = {op.path: op for op in operations}
    json_body = {"Content-Type": "application/json"}
    for path, body, key, kwargs, status in [
        ("/predict", {"ticker": "T00001", "explain": True}, "reader", {}, 200),
        ("/predict", {"ticker": "T00001"}, "reader", {}, 200),  # cached
        ("/predict_batch", {"tickers": ["T00001", "T00002", "NOPE"], "explain": False}, "reader", {}, 200),
        ("/admin/reload", {}, "admin", {}, 200),
        ("/admin/cache/flush", {}, "admin", {}, 200),
        ("/predict", {"ticker": "T00001"}, None, {}, 401),
        ("/admin/reload", {}, "reader", {}, 403),
        ("/predict", None, "reader", {"content": b"ticker=T1", "headers": {"Content-Type": "text/plain"}}, 415),
        ("/predict", None, "reader", {"content": b"[" + b"1," * 600_000 + b"1]", "headers": json_body}, 413),
        ("/predict", {"ticker": "T00001", "horizon": 9}, "reader", {}, 422),
    ]:
        answer = server.post(path, body, key=key, **kwargs)
        assert answer.status_code == status, (path, answer.text)
        by_path[path].Case(body=body or {}, media_type="application/json").validate_response(answer, checks=CONFORMANCE)
    for path in ("/readyz", "/metrics", "/livez"):
        by_path[path].Case().validate_response(httpx.get(f"{server.base}{path}"), checks=CONFORMANCE)


def run_cases(server, operation, mode, headers: dict, calls: list) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        response = case.call_and_validate(base_url=server.base, headers=headers, checks=CONFORMANCE, timeout=30)
        calls.append((case.path, response.status_code))

    try:
        check()
    except Unsatisfiable:  # no invalid input exists for an operation without parameters
        assert mode == schemathesis.GenerationMode.NEGATIVE


def test_without_keys_an_admin_call_is_401_and_a_broken_champion_hides_its_error(tmp_path):
    """The newcomer's `make serve` (no keys): predictions open, admin asks for credentials; a champion whose
    artifacts are gone answers 503 with a public reason, the MLflow error only in the log."""
    world = build_world(tmp_path / "world", 10, keys={})
    uri = world.settings.mlflow_tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    source = client.get_model_version(world.settings.registered_model, "1").source  # models:/<model id>
    stored = Path(client.get_logged_model(source.removeprefix("models:/")).artifact_location.removeprefix("file://"))
    (stored / "MLmodel").unlink()  # the artifact store lost it: MLflow raises "No such artifact: 'MLmodel'"
    log = tmp_path / "bento.log"
    with serve(world.env, log, ready_path="/livez") as base:
        admin = httpx.post(f"{base}/admin/reload", json={}, timeout=30)
        assert admin.status_code == 401 and admin.headers["www-authenticate"].startswith("Bearer")
        assert "API key" in admin.json()["error"]
        answer = httpx.post(f"{base}/predict", json={"ticker": "T00001"}, timeout=30)
        ready = httpx.get(f"{base}/readyz")
        assert answer.status_code == 503 and ready.status_code == 503
        for text in (answer.text, ready.text):
            assert "MlflowException" not in text and "MLmodel" not in text and str(tmp_path) not in text
        assert "see the service log" in answer.json()["error"]
    assert "MLmodel" in log.read_text()  # the operator still learns the cause
