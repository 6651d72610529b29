"""The service's Redis link (bento.store.RedisLink, on redis-py's asyncio client) against a real redis-server and
against servers that misbehave: concurrent lookups get their own answers, scripts load again after SCRIPT FLUSH,
AUTH and SELECT come from the URL, and refused, silent and TLS servers behave as the circuit breaker expects."""

import asyncio
import shutil
import subprocess
import time

import pytest
import redis
from support.service import free_port, online_frame

from bento.store import RedisLink, RedisUnavailable
from stockpred_core.io.online_store import push_vectors
from stockpred_core.serving.keys import cache_key, cache_prefix


def test_concurrent_lookups_get_their_own_answers_and_scripts_reload(redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    frame = online_frame(50)
    push_vectors(client, frame)
    prefix = cache_prefix("m", "1", 5)
    for i in range(0, 50, 2):  # every other ticker has a cached answer
        client.set(cache_key(prefix, f"T{i:05d}", "2025-06-27", True), f'{{"n":{i}}}')

    async def scenario():
        link = RedisLink(url)
        try:
            await link.refresh_meta()
            client.script_flush()  # a restarted Redis forgets the scripts: they are loaded again
            tickers = [f"T{i % 50:05d}" for i in range(2000)]
            found = await asyncio.gather(*(link.lookup([t], prefix, True) for t in tickers))
            return tickers, found, len(client.client_list())
        finally:
            await link.close()

    tickers, found, connections = asyncio.run(scenario())
    for ticker, lookup in zip(tickers, found, strict=True):
        [(name, item)] = lookup.items()
        n = int(ticker[1:])
        assert name == ticker and item.date == "2025-06-27"
        if n % 2 == 0:
            assert item.cached == f'{{"n":{n}}}'.encode() and item.row is None
        else:
            assert item.cached is None and item.row.ticker == ticker and item.row.source == "redis"
    assert connections < 10  # the concurrent lookups shared pipelines, not one connection each


def test_user_password_and_database_come_from_the_url(redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "svc", "on", ">s3cret", "~*", "&*", "+@all")
    port = redis_url.rsplit(":", 1)[1].split("/")[0]

    async def whoami(url: str):
        link = RedisLink(url)
        try:
            return await link.call(lambda: link.client.execute_command("ACL", "WHOAMI")), await link.call(
                lambda: link.client.execute_command("CLIENT", "INFO")
            )
        finally:
            await link.close()

    try:
        user, info = asyncio.run(whoami(f"redis://svc:s3cret@127.0.0.1:{port}/2"))
        assert user == b"svc" and b" db=2 " in info
        with pytest.raises(RedisUnavailable, match=r"WRONGPASS|invalid username-password"):
            asyncio.run(whoami(f"redis://svc:wrong@127.0.0.1:{port}/2"))
    finally:
        admin.execute_command("ACL", "DELUSER", "svc")


def test_refused_and_silent_servers_mark_redis_down_within_the_timeout():
    async def scenario():
        refused = RedisLink(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
        with pytest.raises(RedisUnavailable):
            await refused.reload_token()
        assert not refused.up
        with pytest.raises(RedisUnavailable):  # fails fast now, until the watcher's ping brings it back
            await refused.reload_token()
        await refused.close()

        async def silent(reader, writer):  # reads commands, never answers
            while await reader.read(1024):
                pass

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = RedisLink(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        began = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await asyncio.gather(link.reload_token(), link.reload_token())
        waited = time.monotonic() - began
        assert not link.up
        await link.close()
        server.close()
        return waited

    assert 0.3 <= asyncio.run(scenario()) < 1.5


def test_a_tls_redis_answers_over_rediss(tmp_path):
    """A private redis-server with TLS only (a self-signed CA made with openssl), reached with a rediss:// URL."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")  # the Debian images CI and users run on have it
    cert, key = tmp_path / "redis.pem", tmp_path / "redis.key"
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(cert), *subj], check=True, capture_output=True)
    port = free_port()
    local = ["--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    tls = ["--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", *tls, "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", *local],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    async def scenario():
        deadline = time.monotonic() + 10
        while True:
            link = RedisLink(f"rediss://127.0.0.1:{port}/3?ssl_ca_certs={cert}")
            try:
                return await link.call(lambda link=link: link.client.execute_command("CLIENT", "INFO"))
            except RedisUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
            finally:
                await link.close()

    try:
        info = asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert b" db=3 " in info


def test_the_breaker_keeps_requests_off_a_down_redis_and_the_watchers_ping_closes_it(redis_url):
    """The service's Redis breaker (stockpred_core.resilience's): open at the first failed call, requests refused
    without touching Redis while open, the background ping its half-open trial."""

    async def scenario():
        link = RedisLink(redis_url)
        changes, calls = [], []
        link.on_change = changes.append

        async def failing():
            calls.append("sent")
            raise ConnectionError("connection reset")

        with pytest.raises(RedisUnavailable):
            await link.call(failing)
        assert link.breaker.state == "open" and not link.up and changes == [False]
        with pytest.raises(RedisUnavailable):
            await link.call(failing)
        assert calls == ["sent"]  # the second request never reached Redis
        await link._probe()  # the watcher's trial: Redis answers its ping
        assert link.up and link.breaker.state == "closed" and changes == [False, True] and link.error is None
        assert await link.call(link.client.ping)
        await link.close()

    asyncio.run(scenario())
