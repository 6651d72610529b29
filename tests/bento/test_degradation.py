"""Redis stopped in the middle of traffic: the service keeps answering (from the lake, uncached, with a per-worker
rate limit), says so in /readyz and /metrics, and uses Redis again once it is back."""

import threading
import time

import httpx
import pytest
from support.service import build_world, free_port, serve, start_redis

pytestmark = pytest.mark.slow


def wait_for(predicate, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_redis_outage_degrades_to_the_lake_without_failing_requests(tmp_path):
    port = free_port()
    store, _ = start_redis(tmp_path, port)
    try:
        world = build_world(tmp_path / "world", 30, f"redis://127.0.0.1:{port}/0")
        with serve(world.env, tmp_path / "bento.log") as base:
            reader = {"X-API-Key": world.keys["reader"]}

            def predict(ticker: str, key=reader) -> httpx.Response:
                return httpx.post(f"{base}/predict", json={"ticker": ticker}, headers=key, timeout=30)

            predict("T00001")
            warm = predict("T00001").json()
            assert (warm["cached"], warm["features_source"]) == (True, "cache")

            statuses: list[int] = []
            stop = threading.Event()

            def traffic() -> None:
                i = 0
                while not stop.is_set():
                    statuses.append(predict(f"T{i % 30:05d}").status_code)
                    i += 1

            thread = threading.Thread(target=traffic)
            thread.start()
            try:
                time.sleep(0.5)
                store.terminate()  # Redis goes away under traffic
                store.wait(timeout=10)
                time.sleep(0.5)
                degraded = predict("T00001").json()
                assert (degraded["cached"], degraded["features_source"]) == (False, "lake")
                assert degraded["prediction"] == pytest.approx(warm["prediction"])
                ready = httpx.get(f"{base}/readyz")
                body = ready.json()
                assert ready.status_code == 200 and body["redis"].startswith("down") and body["degraded"]
                assert body["cache"] == "off" and body["features"]["source"] == "lake"
                assert "stockpred_redis_up 0.0" in httpx.get(f"{base}/metrics").text
                slow = {"X-API-Key": world.keys["slow"]}
                assert [predict("T00002", slow).status_code for _ in range(2)] == [200, 429]  # limit held locally

                store, _ = start_redis(tmp_path, port)  # back, and empty: features still come from the lake
                assert wait_for(lambda: httpx.get(f"{base}/readyz").json()["redis"] == "ok")
                predict("T00003")
                assert wait_for(lambda: predict("T00003").json()["cached"])
            finally:
                stop.set()
                thread.join(timeout=30)
            assert len(statuses) > 10 and set(statuses) == {200}, set(statuses)
    finally:
        store.terminate()
        store.wait(timeout=10)
