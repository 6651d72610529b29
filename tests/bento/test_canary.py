"""The canary (issue 23) on a real `bentoml serve` with Redis and a real MLflow registry: 10% of the clients (bearer
tokens of a local issuer, one subject each) are answered by the challenger, sticky per client and labelled; a faulty
challenger under load is rolled back to 0% with no failed client request; the rollback is in the audit log and on
the challenger's registry version."""

import asyncio
import time

import httpx
import mlflow
import numpy as np
import pytest
import redis
from support.service import audit_lines, build_world, fit, register, serve, set_alias, training_data

from bento.audit import AuditSink
from bento.canary import CANARY, CHAMPION, Canary, Monitor, Rules, bucket
from bento.responses import _canary_outcome
from bento.store import RedisLink
from stockpred_core.io.model_card import CHALLENGER_ALIAS
from stockpred_core.io.served_log import STATE_KEY, read_served
from stockpred_core.models.baselines import LinearForecaster
from stockpred_core.settings import ServiceSettings

CLIENTS = 200
PINNED = {"client-0": 7637, "jwt:alice": 539, "reader": 6790}


def test_buckets_are_sticky_and_a_larger_share_keeps_its_clients():
    clients = [f"client-{i}" for i in range(5000)]
    at = {share: {c for c in clients if bucket(c) < share * 100} for share in (5, 10, 25)}
    assert at[5] <= at[10] <= at[25]
    assert abs(len(at[10]) / len(clients) - 0.10) < 0.015
    # the bucket is the SHA-256 of the id: the same in every worker, process and release (pinned here)
    assert {c: bucket(c) for c in PINNED} == PINNED


def test_the_monitor_judges_errors_and_latency_once_both_variants_have_enough():
    clock = [0.0]
    monitor = Monitor(Rules(window_seconds=10, min_requests=20, latency_floor_ms=5), clock=lambda: clock[0])
    for _ in range(30):
        monitor.record(CHAMPION, 0.004, False)
    for _ in range(19):
        monitor.record(CANARY, 0.5, True)
    assert monitor.verdict() is None  # 19 canary requests: too few
    monitor.record(CANARY, 0.004, True)
    assert monitor.verdict().startswith("error rate 100.00%")
    monitor.clear()
    for i in range(40):
        monitor.record(CHAMPION, 0.010, False)
        monitor.record(CANARY, 0.030 if i % 2 else 0.010, False)
    assert monitor.verdict().startswith("p99 latency 30.0 ms against the champion's 10.0 ms")
    clock[0] += 11  # the window moved on: nothing left to judge
    monitor.record(CANARY, 0.030, False)
    assert monitor.verdict() is None and monitor.stats(CHAMPION)["requests"] == 0


class Version:
    """What the canary reads of a served model: its version, horizon and label."""

    def __init__(self, version: str, horizon: int = 5, label: str = "return") -> None:
        self.version, self.horizon, self.label, self.name = version, horizon, label, "stockpred"


class Registry:
    """The two aliases as a worker's ModelManager holds them; `check` loads the challenger once followed."""

    def __init__(self, challenger: str | None) -> None:
        self.current, self.follow_challenger, self.wanted = Version("1"), False, challenger
        self.challenger = None

    def check(self) -> bool:
        if self.follow_challenger and self.wanted:
            self.challenger = Version(self.wanted)
        return False


def workers(redis_url: str, n: int, percent: float, tmp_path, challenger: str = "2") -> list[Canary]:
    settings = ServiceSettings(canary_percent=percent, canary_min_requests=5)
    link = RedisLink(redis_url)
    audit = AuditSink(str(tmp_path / "audit.log"))
    canaries = [Canary(settings, Registry(challenger), link, audit, asyncio.ensure_future) for _ in range(n)]
    for canary in canaries:
        canary.models.check()
    return canaries


def test_an_admin_share_reaches_every_worker_and_a_rollback_is_recorded_once(redis_url, tmp_path):
    url = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).delete(STATE_KEY)

    async def run() -> None:
        first, second = workers(url, 2, 0, tmp_path)
        assert first.percent == 0 and second.models.challenger is None  # no share asked: the challenger not loaded
        await first.set_percent(10)
        await second.read_state()  # its sync loop, once a second
        assert second.models.challenger.version == "2" and second.percent == 10
        for canary in (first, second):
            for _ in range(6):
                canary.monitor.record(CHAMPION, 0.001, False)
                canary.monitor.record(CANARY, 0.001, True)
        await asyncio.gather(first.roll_back("errors"), second.roll_back("errors"))  # both judged it at once
        lines = [line for line in (tmp_path / "audit.log").read_text().splitlines() if "canary_rollback" in line]
        assert len(lines) == 1
        await first.read_state()
        await second.read_state()
        assert first.percent == second.percent == 0 and first.requested == 10
        second.models.challenger = Version("3")  # a new challenger takes the alias: the asked share applies to it
        assert second.percent == 10 and second.variant("jwt:alice") == CANARY  # bucket 539 < 1000
        await first.set_percent(5)  # an admin's new share clears the rollback of version 2 too
        await second.read_state()
        second.models.challenger = Version("2")
        assert second.percent == 5 and second.state.get("rolled_back") is None

    asyncio.run(run())


def test_a_canary_slower_than_its_timeout_gives_way_to_the_champion():
    class Slow:
        canary = type("Limits", (), {"timeout_s": 0.05})()

        async def predict(self, *args):
            await asyncio.sleep(1)

    async def run() -> float:
        started = time.perf_counter()
        assert await _canary_outcome(Slow(), Version("2"), ["T00001"], None, False, None) is None
        return time.perf_counter() - started

    assert asyncio.run(run()) < 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory, issuer, redis_url):
    root = tmp_path_factory.mktemp("canary")
    env = {
        **issuer.env(),
        "STOCKPRED_CANARY_PERCENT": "10",
        "STOCKPRED_CANARY_MIN_REQUESTS": "20",
        "STOCKPRED_CANARY_WINDOW_SECONDS": "30",
        # judged on failures only here: p99s of a few dozen requests on two busy cores differ 2x by chance (the
        # latency rule is the monitor's test above); a healthy linear challenger was once rolled back at 48 vs 24 ms
        "STOCKPRED_CANARY_MAX_LATENCY_RATIO": "100",
    }
    world = build_world(root / "world", 40, redis_url.rsplit("/", 1)[0] + "/10", extra_env=env)
    healthy = register(world.settings, fit("linear", seed=3), alias=CHALLENGER_ALIAS)
    with serve(world.env, root / "bento.log") as base:
        yield base, world, healthy


def tokens(issuer) -> dict[str, str]:
    return {f"client-{i:03d}": issuer.token(subject=f"client-{i:03d}", lifetime=3600) for i in range(CLIENTS)}


async def load(base: str, clients: dict[str, str], seconds: float, concurrency: int = 12) -> list[tuple]:
    """Clients in turn, `concurrency` requests at a time, for `seconds`: (client, status, variant, version, t)."""
    names = list(clients)
    answers: list[tuple] = []
    deadline = time.monotonic() + seconds

    async def worker(k: int, http: httpx.AsyncClient) -> None:
        i = k
        while time.monotonic() < deadline:
            name = names[i % len(names)]
            i += concurrency
            headers = {"Authorization": f"Bearer {clients[name]}"}
            body = {"ticker": f"T{i % 40:05d}", "explain": False}
            answer = await http.post(f"{base}/predict", json=body, headers=headers)
            variant = answer.headers.get("x-model-variant")
            answers.append((name, answer.status_code, variant, answer.headers.get("x-model-version"), time.time()))

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(worker(k, http) for k in range(concurrency)))
    return answers


@pytest.mark.slow
def test_a_healthy_canary_answers_its_share_sticky_and_labelled(server, issuer):
    base, world, healthy = server
    clients = tokens(issuer)
    answers = asyncio.run(load(base, clients, 6))
    assert {status for _, status, *_ in answers} == {200}
    per_client: dict[str, set] = {}
    for name, _, variant, version, _ in answers:
        per_client.setdefault(name, set()).add((variant, version))
    assert all(len(seen) == 1 for seen in per_client.values()), "a client moved between variants"
    on_canary = {name for name, seen in per_client.items() if next(iter(seen))[0] == CANARY}
    assert on_canary == {name for name in per_client if bucket(f"jwt:{name}") < 1000}  # the caller id
    assert 0.04 < len(on_canary) / len(per_client) < 0.18, len(on_canary)
    assert {next(iter(per_client[name]))[1] for name in on_canary} == {healthy}
    status = httpx.post(f"{base}/admin/canary", json={}, headers=admin(issuer), timeout=30).json()
    assert status["percent"] == 10 and status["challenger_version"] == healthy and status["inactive_reason"] is None
    assert status["variants"][CANARY]["requests"] > 0 and status["variants"][CANARY]["error_rate"] == 0
    time.sleep(1.5)  # the served log is written once a second
    served = read_served(redis.Redis.from_url(world.env["STOCKPRED_REDIS_URL"]))
    versions = served.groupby("variant")["model_version"].unique().map(list).to_dict()
    assert versions == {CANARY: [healthy], CHAMPION: ["1"]}
    assert not served.duplicated(["variant", "ticker", "date"]).any() and set(served["horizon"]) == {5}


def admin(issuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(subject='ops', scope='stockpred.admin')}"}


@pytest.mark.slow
def test_a_faulty_canary_under_load_rolls_back_with_no_failed_request(server, issuer):
    """The challenger takes a column the online features lack (trained on a newer feature set, say): every canary
    request fails on the model side. Its clients get the champion's answer meanwhile; the canary goes to 0%."""
    base, world, _ = server
    X, y = training_data(seed=5)
    X["ghost_feature"] = np.random.default_rng(0).normal(size=len(X))
    faulty = register(world.settings, LinearForecaster(alpha=1.0).fit(X, y), alias=CHALLENGER_ALIAS, example=X.head(3))
    reload = httpx.post(f"{base}/admin/reload", json={}, headers=admin(issuer), timeout=60).json()
    assert reload["challenger_version"] == faulty
    clients = tokens(issuer)
    started = time.time()
    answers = asyncio.run(load(base, clients, 8))
    statuses = [status for _, status, *_ in answers]
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
    assert {variant for _, _, variant, _, _ in answers} == {CHAMPION}  # the canary never answered: it failed
    time.sleep(0.5)
    lines = audit_lines(world)
    [rollback] = [line for line in lines if line.get("event") == "canary_rollback"]
    assert rollback["challenger_version"] == faulty and rollback["reason"].startswith("error rate 100.00%")
    fallbacks = [line for line in lines if line.get("canary_fallback") and line["ts"] >= _iso(started)]
    assert len(fallbacks) >= 20 and all(line["status"] == 200 for line in fallbacks)
    assert all(line["variant"] == CHAMPION for line in fallbacks)
    after = [line for line in lines if line.get("event") == "request" and line["ts"] > _iso(rollback["ts"] + 1)]
    assert after and not any(line.get("canary_fallback") for line in after)
    status = httpx.post(f"{base}/admin/canary", json={}, headers=admin(issuer), timeout=30).json()
    assert status["percent"] == 0 and status["inactive_reason"].startswith("rolled back: error rate")
    client = mlflow.MlflowClient(world.settings.mlflow_tracking_uri, world.settings.mlflow_tracking_uri)
    tags = client.get_model_version(world.settings.registered_model, faulty).tags
    assert tags["canary.rollback_reason"] == rollback["reason"] and "canary.rolled_back_at" in tags
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    scraped = [line for line in metrics.splitlines() if line.startswith(("stockpred_canary", "stockpred_variant_req"))]
    assert "stockpred_canary_rollbacks_total 1.0" in scraped, scraped
    assert any('outcome="failed",variant="canary"' in line for line in scraped), scraped


@pytest.mark.slow
def test_an_admin_share_clears_the_rollback_and_a_reader_may_not_set_one(server, issuer):
    base, world, healthy = server
    reader = {"Authorization": f"Bearer {issuer.token(subject='someone')}"}
    refused = httpx.post(f"{base}/admin/canary", json={"percent": 50}, headers=reader, timeout=30)
    assert refused.status_code == 403 and "stockpred.admin" in refused.json()["error"]
    too_much = httpx.post(f"{base}/admin/canary", json={"percent": 100}, headers=admin(issuer), timeout=30)
    assert too_much.status_code == 400
    set_alias(world.settings, CHALLENGER_ALIAS, healthy)  # another version than the rolled-back one
    httpx.post(f"{base}/admin/reload", json={}, headers=admin(issuer), timeout=60)
    status = httpx.post(f"{base}/admin/canary", json={}, headers=admin(issuer), timeout=30).json()
    assert status["percent"] == 10 and status["challenger_version"] == healthy  # STOCKPRED_CANARY_PERCENT again
    status = httpx.post(f"{base}/admin/canary", json={"percent": 25}, headers=admin(issuer), timeout=30).json()
    assert status["percent"] == 25 and status["challenger_version"] == healthy and status["inactive_reason"] is None


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
