"""The service's parts without HTTP, against a real Redis: the online store layout, API keys, the rate limit, the
caches and the predictor (features from Redis or the lake, hits and misses, staleness, errors)."""

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
import redis
from support.service import FEATURE_DATE, HORIZON, build_world, online_frame, register, set_alias

from bento.predictor import NoModel, Predictor, RateLimited, RequestError, local_cache
from bento.rate_limit import LocalLimiter
from bento.security import ApiKey, KeyConfigError, KeyStore, allows, hash_key, new_token
from bento.store import RedisLink
from stockpred_core.io.online_store import (
    META_KEY,
    SNAPSHOT_KEY,
    decode_snapshot,
    fetch_vector,
    push_vectors,
    read_meta,
    read_snapshot,
)
from stockpred_core.models.baselines import LinearForecaster
from stockpred_core.settings import SettingsError, load_service_settings, load_settings


def test_online_store_keeps_one_hash_per_ticker_and_replaces_the_set(redis_url):
    client = redis.Redis.from_url(redis_url, db=3)
    client.flushdb()
    frame = online_frame(5)
    assert push_vectors(client, frame) == 5
    vector = fetch_vector(client, "T00002")
    assert vector["date"] == FEATURE_DATE and vector["rsi_14"] == pytest.approx(frame.loc[2, "rsi_14"])
    assert client.type("stockpred:online:T00002") == b"hash"
    meta = read_meta(client)
    assert meta["count"] == "5" and meta["latest_date"] == FEATURE_DATE
    columns = json.loads(meta[f"columns:{frame.loc[0, 'feature_set_version']}"])
    raw = np.frombuffer(client.hget("stockpred:online:T00002", "vector"), dtype="<f8")
    assert raw[columns.index("ret_5")] == pytest.approx(frame.loc[2, "ret_5"])
    push_vectors(client, frame.iloc[:3])  # two tickers left the universe
    assert fetch_vector(client, "T00004") is None and read_meta(client)["count"] == "3"


def test_online_snapshot_packs_the_same_vectors_as_the_hashes(redis_url):
    client = redis.Redis.from_url(redis_url, db=3)
    client.flushdb()
    frame = online_frame(7)
    frame.loc[3, "rsi_14"] = np.nan
    push_vectors(client, frame)
    snapshot = read_snapshot(client)
    assert snapshot.written_at == read_meta(client)["written_at"] and snapshot.tickers == frame["ticker"].tolist()
    assert snapshot.dates == [FEATURE_DATE] * 7 and client.ttl(SNAPSHOT_KEY) > 0
    for i, ticker in enumerate(snapshot.tickers):
        packed = np.frombuffer(client.hget(f"stockpred:online:{ticker}", "vector"), dtype="<f8")
        np.testing.assert_array_equal(snapshot.matrix[i], packed)
    assert np.isnan(snapshot.matrix[3, snapshot.columns.index("rsi_14")])
    raw = client.hgetall(SNAPSHOT_KEY)
    raw[b"dates"] = raw[b"dates"].rsplit(b"\n", 1)[0]  # one date short
    with pytest.raises(ValueError, match="inconsistent online snapshot: 7 tickers, 6 dates"):
        decode_snapshot(raw)


def test_api_keys_are_stored_hashed_and_checked(tmp_path):
    token = new_token()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"id": "ops", "role": "admin", "sha256": hash_key(token)}]))
    other = new_token()
    store = KeyStore.load(str(path), f"app:reader:{hash_key(other)}:5")
    assert store.authenticate(token) == ApiKey("ops", "admin")
    assert store.authenticate(other) == ApiKey("app", "reader", 5.0)
    assert store.authenticate("spk_guess") is None and token not in path.read_text()
    assert allows("admin", "reader") and not allows("reader", "admin")
    with pytest.raises(KeyConfigError, match="SHA-256 of the token"):
        KeyStore.load(None, f"x:reader:{token}")
    with pytest.raises(KeyConfigError, match="role"):
        KeyStore.load(None, f"x:root:{hash_key(token)}")


def test_service_settings_parse_and_refuse_bad_values():
    s = load_service_settings({"STOCKPRED_CACHE_TTL_SECONDS": "60", "STOCKPRED_SHADOW_SCORING": "true"})
    assert (s.cache_ttl_seconds, s.shadow_scoring, s.rate_per_second) == (60, True, 20.0)
    assert load_settings({}).service.cache_ttl_seconds == 3600
    with pytest.raises(SettingsError, match="STOCKPRED_RATE_LIMIT_PER_SECOND must be a number"):
        load_service_settings({"STOCKPRED_RATE_LIMIT_PER_SECOND": "fast"})


def test_rate_limit_in_redis_and_in_process(redis_url):
    async def scenario():
        link = RedisLink(redis_url)
        await link.client.delete("stockpred:rate:unit")
        waits = [await link.rate("unit", rate=2.0, burst=3) for _ in range(4)]
        await link.close()
        return waits

    waits = asyncio.run(scenario())
    assert waits[:3] == [0, 0, 0] and 0 < waits[3] <= 0.5  # a burst of 3, then one every 0.5 s
    local = LocalLimiter()
    assert [local.wait_seconds("k", 2.0, 3) > 0 for _ in range(4)] == [False, False, False, True]


def test_local_cache_expires_and_evicts():
    now = [100.0]
    cache = local_cache(ttl_seconds=10, max_entries=2, timer=lambda: now[0])
    cache["a"] = b"1"
    cache["b"] = b"2"
    cache.get("a")
    cache["c"] = b"3"  # evicts b, the least recently used
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")
    now[0] += 11
    assert cache.get("a") is None


def test_without_redis_the_predictor_caches_in_process_with_the_configured_ttl(tmp_path):
    env = {"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path), "STOCKPRED_CACHE_TTL_SECONDS": "7"}
    predictor = Predictor(load_settings(env))
    assert predictor.redis is None and predictor.local_cache.ttl == 7 and predictor.local_cache.maxsize == 100_000


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/4"
    # These tests are about answers, not about Redis failing fast: a loaded CI machine may stall a read past 0.5 s.
    slow_ok = {"STOCKPRED_REDIS_TIMEOUT_SECONDS": "5"}
    return build_world(tmp_path_factory.mktemp("units"), n_tickers=40, redis_url=url, extra_env=slow_ok)


def run(predictor: Predictor, coro_fn):
    async def main():
        await predictor.start()
        try:
            return await coro_fn()
        finally:
            await predictor.stop()

    return asyncio.run(main())


@pytest.mark.slow
def test_predictor_reads_redis_caches_and_flags(world):
    settings = load_settings(world.env)
    predictor = Predictor(settings)
    predictor.load()

    async def scenario():
        await predictor.flush_cache()
        first = await predictor.predict(["t00001", "T00002", "T00001", "NOPE"], None, True)
        await asyncio.sleep(0.2)  # the cache write runs after the answer
        second = await predictor.predict(["T00001"], HORIZON, True)
        plain = await predictor.predict(["T00003"], None, False)
        limit = ("unit-key", 1.0, 1)
        await predictor.redis.client.delete("stockpred:rate:unit-key")
        await predictor.predict(["T00003"], None, False, limit)  # charged in the lookup's round trip
        with pytest.raises(RateLimited) as limited:
            await predictor.predict(["T00003"], None, False, limit)
        assert 0 < limited.value.wait_seconds <= 1
        return first, second, plain

    first, second, plain = run(predictor, scenario)
    assert first.tickers == ["T00001", "T00002", "NOPE"] and first.misses == 2
    assert first.errors == {"NOPE": (404, "unknown ticker 'NOPE': no online features for it (40 tickers known)")}
    a, b = json.loads(first.answers["T00001"]), json.loads(second.answers["T00001"])
    assert (a["cached"], a["features_source"], b["cached"], b["features_source"]) == (False, "redis", True, "cache")
    assert a["prediction"] == b["prediction"] and a["model_version"] == "1" and len(a["top_contributions"]) == 5
    assert a["interval_low"] < a["predicted_return"] < a["interval_high"]
    assert a["predicted_price"] == pytest.approx(a["last_close"] * (1 + a["predicted_return"]))
    assert a["stale"] is True and "sessions old" in a["stale_reason"]  # the synthetic features are from 2025
    row = world.features.set_index("ticker").loc["T00001"]
    top = a["top_contributions"][0]
    assert top["value"] == pytest.approx(row[top["feature"]])
    assert json.loads(plain.answers["T00003"])["top_contributions"] == []
    with pytest.raises(RequestError, match="horizon 7 is not served") as info:
        predictor.check_request(["T00001"], 7, True)
    assert info.value.status == 422


@pytest.mark.slow
def test_a_batch_reads_the_snapshot_and_agrees_with_single_lookups(world):
    """Batches take their features from the worker's copy of the online snapshot, single tickers from the hash:
    the answers are the same, and a rewrite of the store reaches batches at the next refresh."""
    predictor = Predictor(load_settings(world.env))
    predictor.load()
    client = redis.Redis.from_url(world.env["STOCKPRED_REDIS_URL"])
    moved = world.features.copy()
    moved["date"] = pd.Timestamp("2025-06-30")
    moved["ret_5"] += 0.5

    async def scenario():
        await predictor.flush_cache()
        batch = await predictor.predict(["T00001", "T00002", "T00003"], None, False)
        await asyncio.sleep(0.2)  # the cache write runs after the answer
        await predictor.flush_cache()
        singles = [await predictor.predict([t], None, False) for t in ("T00001", "T00002", "T00003")]
        push_vectors(client, moved)
        await predictor.redis.refresh_meta()
        after = await predictor.predict(["T00001", "T00002"], None, False)
        return batch, singles, after

    try:
        batch, singles, after = run(predictor, scenario)
    finally:
        push_vectors(client, world.features)
    assert batch.misses == 3
    for single in singles:
        [ticker] = single.tickers
        a, b = json.loads(batch.answers[ticker]), json.loads(single.answers[ticker])
        assert a["features_source"] == b["features_source"] == "redis"
        fields = ("prediction", "last_close", "feature_date")
        assert [a[f] for f in fields] == [b[f] for f in fields]
    newer = json.loads(after.answers["T00001"])
    assert after.misses == 2 and newer["feature_date"] == "2025-06-30"
    assert newer["prediction"] != json.loads(batch.answers["T00001"])["prediction"]


@pytest.mark.slow
def test_predictor_falls_back_to_the_lake_and_to_a_local_cache(world, tmp_path):
    env = {k: v for k, v in world.env.items() if k != "STOCKPRED_REDIS_URL"}
    predictor = Predictor(load_settings(env))
    predictor.load()

    async def scenario():
        return [await predictor.predict(["T00005"], None, True) for _ in range(2)]

    first, second = run(predictor, scenario)
    assert json.loads(first.answers["T00005"])["features_source"] == "lake" and first.misses == 1
    assert json.loads(second.answers["T00005"])["cached"] is True and second.hits == 1
    ready, body = predictor.readiness()
    assert ready and body["cache"] == "in-process" and body["features"]["source"] == "lake"


@pytest.mark.slow
def test_a_rank_model_has_no_price_and_a_newer_date_makes_others_stale(world, redis_url):
    client = redis.Redis.from_url(world.env["STOCKPRED_REDIS_URL"])
    newer = online_frame(1, date="2025-06-30").assign(ticker="T00039")
    frame = pd.concat([world.features.iloc[:39], newer], ignore_index=True)
    push_vectors(client, frame)
    version = register(world.settings, LinearForecaster().fit(*_xy()), alias=None, label="rank")
    set_alias(world.settings, "champion", version)
    try:
        predictor = Predictor(load_settings(world.env))
        predictor.load()

        async def scenario():
            await predictor.redis.refresh_meta()
            return await predictor.predict(["T00001"], None, True)

        out = run(predictor, scenario)
        answer = json.loads(out.answers["T00001"])
        assert answer["label"] == "rank" and answer["predicted_price"] is None and answer["predicted_return"] is None
        assert "rank scores" in answer["note"] and answer["model_family"] == "linear"
        assert answer["stale_reason"] == "features dated 2025-06-27, the latest online features are dated 2025-06-30"
    finally:
        set_alias(world.settings, "champion", "1")
        push_vectors(client, world.features)


def _xy():
    from support.service import training_data

    return training_data(rows=500)


def test_no_champion_means_no_model(tmp_path):
    predictor = Predictor(load_settings({"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path)}))
    predictor.load()
    ready, body = predictor.readiness()
    assert not ready and "no champion model" in body["reasons"][0]
    with pytest.raises(NoModel):
        predictor.check_request(["X"], None, True)


def test_redis_meta_key_name_cannot_collide_with_a_ticker():
    assert not META_KEY.startswith("stockpred:online:")
