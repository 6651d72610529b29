"""The prediction service over real HTTP (`bentoml serve`, 2 workers) with a real Redis: answers and the cache, the
auth and rate-limit matrix, limits and invalid bodies, the audit log, metrics, shadow scoring, schemathesis against
the OpenAPI document, and a model swap under traffic."""

import threading
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from support.service import Server, audit_lines, build_world, fit, register, serve, set_alias

from bento.schemas import BatchPrediction, Prediction

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_url):
    root = tmp_path_factory.mktemp("http")
    limits = {
        "STOCKPRED_SERVICE_WORKERS": "2",
        "STOCKPRED_SHADOW_SCORING": "true",
        "STOCKPRED_MAX_BATCH_TICKERS": "100",
        "STOCKPRED_MAX_EXPLAIN_TICKERS": "20",
        "STOCKPRED_MAX_BODY_BYTES": "65536",
    }
    world = build_world(root / "world", 60, redis_url.rsplit("/", 1)[0] + "/5", extra_env=limits)
    register(world.settings, fit("linear"), alias="challenger")  # version 2, scored in shadow
    with serve(world.env, root / "bento.log") as base:
        yield Server(base, world)


def test_predict_answers_then_serves_from_cache(server):
    first = server.post("/predict", {"ticker": "t00007"})
    assert first.status_code == 200, first.text
    body = Prediction.model_validate(first.json())
    assert (body.ticker, body.model_version, body.cached, body.features_source) == ("T00007", "1", False, "redis")
    assert first.headers["x-model-version"] == "1" and len(body.top_contributions) == 5
    assert body.interval_low < body.predicted_return < body.interval_high
    second = server.post("/predict", {"ticker": "T00007", "horizon": 5})
    again = Prediction.model_validate(second.json())
    assert again.cached and again.prediction == body.prediction and again.feature_date == body.feature_date


def test_batch_answers_known_tickers_and_lists_the_others(server):
    answer = server.post("/predict_batch", {"tickers": ["T00001", "t00002", "T00001", "NOPE"], "explain": False})
    assert answer.status_code == 200, answer.text
    batch = BatchPrediction.model_validate(answer.json())
    assert [p.ticker for p in batch.predictions] == ["T00001", "T00002"] and batch.count == 2
    assert [(e.ticker, e.status) for e in batch.errors] == [("NOPE", 404)]
    assert "no online features" in batch.errors[0].error and batch.model_version == "1"
    many = server.post("/predict_batch", {"tickers": [f"T{i:05d}" for i in range(60)], "explain": False})
    assert many.status_code == 200 and many.json()["count"] == 60


@pytest.mark.parametrize(
    ("path", "key", "header", "status"),
    [
        ("/predict", None, None, 401),
        ("/predict", "bogus", "X-API-Key", 401),
        ("/predict", "reader", "X-API-Key", 200),
        ("/predict", "reader", "Authorization", 200),
        ("/predict", "admin", "X-API-Key", 200),
        ("/predict_batch", None, None, 401),
        ("/predict_batch", "reader", "X-API-Key", 200),
        ("/admin/reload", None, None, 401),
        ("/admin/reload", "reader", "X-API-Key", 403),
        ("/admin/reload", "admin", "Authorization", 200),
        ("/admin/cache/flush", "reader", "Authorization", 403),
        ("/admin/cache/flush", "admin", "X-API-Key", 200),
    ],
)
def test_auth_matrix(server, path, key, header, status):
    body = {"ticker": "T00003"} if path == "/predict" else {"tickers": ["T00003"]} if path == "/predict_batch" else {}
    token = server.world.keys.get(key, "spk_not-a-key") if key else None
    headers = {} if token is None else {header: token if header == "X-API-Key" else f"Bearer {token}"}
    answer = httpx.post(f"{server.base}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer") and "API key" in answer.json()["error"]
    if status == 403:
        assert answer.json()["error"] == f"this API key (role reader) may not call {path}: it needs the admin role"


def test_rate_limit_answers_429_with_retry_after(server):
    assert server.post("/predict", {"ticker": "T00004"}, key="slow").status_code == 200
    limited = server.post("/predict", {"ticker": "T00004"}, key="slow")
    assert limited.status_code == 429 and "rate limit of 1 requests/s" in limited.json()["error"]
    wait = int(limited.headers["retry-after"])
    assert wait >= 1
    time.sleep(wait)
    assert server.post("/predict", {"symbol": "T00004"}, key="slow").status_code == 400  # invalid, still counted
    assert server.post("/predict", {"ticker": "T00004"}, key="slow").status_code == 429
    assert server.post("/predict", {"ticker": "T00004"}).status_code == 200  # other keys have their own budget


def test_limits_and_invalid_requests_get_4xx_with_a_reason(server):
    cases = [
        (server.post("/predict", content=b"x" * 70_000, headers={"Content-Type": "application/json"}), 413, "bytes"),
        (server.post("/predict", content=b"ticker=X", headers={"Content-Type": "text/plain"}), 415, "JSON"),
        (server.post("/predict", content=b"not json"), 400, "json"),
        (server.post("/predict", {"symbol": "T00001"}), 400, "ticker"),
        (server.post("/predict", {"ticker": "bad ticker!"}), 400, "pattern"),
        (server.post("/predict", {"ticker": "T00001", "horizon": 7}), 422, "horizon 7 is not served"),
        (server.post("/predict", {"ticker": "T00001", "horizon": "soon"}), 400, "horizon"),
        (server.post("/predict", {"ticker": "NOPE"}), 404, "unknown ticker 'NOPE'"),
        (server.post("/predict_batch", {"tickers": []}), 400, "tickers"),
        (server.post("/predict_batch", {"tickers": [f"T{i:05d}" for i in range(101)]}), 413, "at most 100"),
        (server.post("/predict_batch", {"tickers": [f"T{i:05d}" for i in range(21)]}), 422, "explanations"),
    ]
    for answer, status, reason in cases:
        assert answer.status_code == status, answer.text
        assert reason.lower() in answer.text.lower()
    assert server.post("/predict", {"ticker": "NOPE"}).json() == {
        "error": "unknown ticker 'NOPE': no online features for it (60 tickers known)"
    }


def test_audit_log_has_a_line_per_request_and_no_secret(server):
    server.post("/predict", {"ticker": "T00011"})
    server.post("/predict_batch", {"tickers": ["T00011"]}, key=None)  # refused before its body is read
    time.sleep(0.3)
    requests = [line for line in audit_lines(server.world) if line["event"] == "request"]
    answered, refused = requests[-2:]
    assert (answered["key_id"], answered["route"], answered["ticker"], answered["status"]) == (
        "reader",
        "/predict",
        "T00011",
        200,
    )
    assert answered["latency_ms"] > 0 and answered["model_version"] == "1" and answered["cached"] in (True, False)
    assert (refused["key_id"], refused["route"], refused["status"]) == (None, "/predict_batch", 401)
    text = (server.world.root / "audit.log").read_text()
    assert all(token not in text for token in server.world.keys.values())


def test_readyz_and_metrics(server):
    ready = httpx.get(f"{server.base}/readyz").json()
    assert ready["ready"] and ready["redis"] == "ok" and ready["cache"] == "redis"
    assert ready["model"]["version"] == "1" and ready["features"] == {
        "source": "redis",
        "tickers": 60,
        "latest_date": "2025-06-27",
        "lake_tickers": 60,
    }
    assert ready["challenger"]["version"] == "2"
    assert httpx.get(f"{server.base}/livez").status_code == 200
    server.post("/predict", {"ticker": "T00020"})
    server.post("/predict", {"ticker": "T00020"})
    metrics = httpx.get(f"{server.base}/metrics").text
    for needle in (
        'stockpred_cache_requests_total{result="hit"}',
        'stockpred_cache_requests_total{result="miss"}',
        'stockpred_prediction_latency_seconds_bucket{le="0.1",route="/predict"}',
        'role="champion"',
        'stockpred_auth_failures_total{reason="missing"}',
        "stockpred_redis_up 1.0",
        'bentoml_service_request_total{endpoint="/predict"',
    ):
        assert needle in metrics, needle
    info = [line for line in metrics.splitlines() if line.startswith("stockpred_model_info{") and "champion" in line]
    assert any('model_version="1"' in line and 'device="cpu"' in line and line.endswith(" 1.0") for line in info)


def test_shadow_scoring_logs_both_models_and_answers_with_the_champion(server):
    answer = server.post("/predict", {"ticker": "T00031"}).json()
    assert answer["model_version"] == "1"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shadows = [x for x in audit_lines(server.world) if x["event"] == "shadow" and x["ticker"] == "T00031"]
        if shadows:
            break
        time.sleep(0.2)
    assert shadows, "no shadow line logged"
    line = shadows[0]
    assert (line["champion_version"], line["challenger_version"]) == ("1", "2")
    assert line["champion_prediction"] == pytest.approx(answer["prediction"])
    assert line["abs_diff"] == pytest.approx(abs(line["challenger_prediction"] - line["champion_prediction"]))


def test_openapi_fuzzing_finds_no_server_error(server):
    """Schemathesis cases, valid and invalid, for every operation of /docs.json (with an admin key): never a 5xx."""
    schema = schemathesis.openapi.from_url(f"{server.base}/docs.json")
    headers = {"X-API-Key": server.world.keys["admin"]}
    calls: list[tuple[str, int]] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/predict_batch", "/admin/reload", "/admin/cache/flush"}
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case) -> None:
                response = case.call(base_url=server.base, headers=headers, timeout=30)
                calls.append((case.path, response.status_code))
                assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.text}"

            try:
                check()
            except Unsatisfiable:  # no invalid input exists for an operation without parameters (GET /livez)
                assert mode == schemathesis.GenerationMode.NEGATIVE
    assert len(calls) > 100 and {status for path, status in calls if path == "/predict"} >= {400, 404}


def test_model_swap_under_traffic_fails_no_request(server):
    """Last in this module: moves the champion alias to a new version while clients keep asking."""
    new_version = register(server.world.settings, fit("lightgbm", seed=2), alias=None)
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def client(offset: int) -> None:
        with httpx.Client(headers={"X-API-Key": server.world.keys["reader"]}, timeout=30) as http:
            i = offset
            while not stop.is_set():
                answer = http.post(f"{server.base}/predict", json={"ticker": f"T{i % 60:05d}"})
                version = answer.json().get("model_version") if answer.status_code == 200 else None
                seen.append((time.monotonic(), answer.status_code, version))
                i += 7

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        set_alias(server.world.settings, "champion", new_version)
        reload = server.post("/admin/reload", {}, key="admin").json()
        assert reload["changed"] and reload["model_version"] == new_version and reload["other_workers_signalled"]
        switched_at = time.monotonic()
        deadline = switched_at + 30
        while time.monotonic() < deadline:  # the other worker follows within a poll (1 s) plus a model load
            recent = [v for t, _, v in seen[-20:] if t > switched_at + 0.2]
            if len(recent) >= 20 and set(recent) == {new_version}:
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    statuses = {status for _, status, _ in seen}
    assert statuses == {200}, f"failed requests during the swap: {statuses}"
    assert {v for _, _, v in seen} == {"1", new_version}
    assert {v for _, _, v in seen[-20:]} == {new_version}
    assert httpx.get(f"{server.base}/readyz").json()["model"]["version"] == new_version
