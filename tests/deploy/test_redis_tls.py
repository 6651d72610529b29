"""Redis as deployed (issue 23): deploy/k8s/base/redis/redis.conf run by a real redis-server with a CA and a server
certificate made for the run, and stockpred's clients connecting the way the manifests configure them (`rediss://`,
the CA's path, `ssl_cert_reqs=required`, the password): the service answers and caches through it; a client that
trusts another CA, a plaintext client and a client without the password are refused."""

import time
from pathlib import Path

import httpx
import pytest
import redis
from support.service import build_world, serve
from support.tls import REDIS_URL, deployed_redis, make_pki, tls_url

from bento.harness.redis_server import free_port, wait_for_redis

PASSWORD = "tls-test-password"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """Redis as deployed (`support.tls.deployed_redis`): (its port, the folder of its CA). The test world resets
    its database with FLUSHDB, which the deployed config disables for clients: that line is left out here."""
    root = tmp_path_factory.mktemp("redis-tls")
    pki = make_pki(root / "tls")
    port = free_port()
    proc = deployed_redis(root, port, PASSWORD, pki, drop=("rename-command FLUSHDB",))
    try:
        wait_for_redis(url(port, pki / "ca.crt"), proc)
        yield port, pki
    finally:
        proc.terminate()
        proc.wait(10)


def url(port: int, ca: Path, database: int = 0) -> str:
    return tls_url(REDIS_URL, PASSWORD, port, ca, database)


def test_only_tls_clients_that_trust_the_ca_and_know_the_password_get_in(tls_redis):
    port, pki = tls_redis
    assert redis.Redis.from_url(url(port, pki / "ca.crt")).ping()
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(url(port, pki / "other-ca.crt")).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(f"redis://:{PASSWORD}@localhost:{port}/0", socket_timeout=2).ping()  # plaintext
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url(port, pki / "ca.crt").replace(PASSWORD, "guess")).ping()


@pytest.mark.slow
def test_the_service_answers_and_caches_through_tls_redis(tls_redis, tmp_path):
    port, pki = tls_redis
    world = build_world(tmp_path / "world", 20, url(port, pki / "ca.crt", 3))
    with serve(world.env, tmp_path / "bento.log") as base:
        headers = {"X-API-Key": world.keys["reader"]}
        first = httpx.post(f"{base}/predict", json={"ticker": "T00003"}, headers=headers, timeout=30)
        assert first.status_code == 200 and first.json()["features_source"] == "redis", first.text
        deadline = time.monotonic() + 10
        while True:  # the cache write follows the answer
            again = httpx.post(f"{base}/predict", json={"ticker": "T00003"}, headers=headers, timeout=30).json()
            if again["cached"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert again["cached"] is True
        ready = httpx.get(f"{base}/readyz", timeout=30).json()
        assert ready["ready"] is True and "redis" in str(ready).lower()
