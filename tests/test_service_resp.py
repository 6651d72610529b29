"""The service's pipelined Redis connection (bento.resp) against a real redis-server, and against servers that
misbehave: replies matched to their callers, scripts loaded when missing, AUTH and SELECT, and redis-py's error types
for refused, silent and dropped connections."""

import asyncio
import time

import pytest
import redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from service_support import free_port

from bento.resp import PipelinedRedis, pack


def test_pack_writes_resp_bulk_strings():
    assert pack(("SET", b"k\r\n", 5)) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n"


def test_concurrent_commands_get_their_own_replies(redis_url):
    async def scenario():
        link = PipelinedRedis(redis_url.rsplit("/", 1)[0] + "/7")
        try:
            replies = await asyncio.gather(*(link.execute("ECHO", f"message {i}") for i in range(2000)))
            await link.execute("SET", "resp:probe", "x")
            return replies, await link.execute("CLIENT", "INFO")
        finally:
            await link.close()

    replies, info = asyncio.run(scenario())
    assert replies == [f"message {i}".encode() for i in range(2000)]
    assert b" db=7 " in info  # SELECT from the URL
    assert redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/7").get("resp:probe") == b"x"


def test_scripts_load_when_missing_and_errors_keep_the_connection(redis_url):
    client = redis.Redis.from_url(redis_url)
    script = client.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}")

    async def scenario():
        link = PipelinedRedis(redis_url)
        try:
            await link.execute("SCRIPT", "FLUSH")
            first = await link.evalsha(script, ["k"], ["v", "21"])
            with pytest.raises(ResponseError, match="unknown command"):
                await link.execute("NOT-A-COMMAND")
            return first, await link.execute("PING")
        finally:
            await link.close()

    assert asyncio.run(scenario()) == ([b"k", b"v", 42], b"PONG")


def test_auth_with_user_and_password(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.execute_command("ACL", "SETUSER", "svc", "on", ">s3cret", "~*", "&*", "+@all")
    port = redis_url.rsplit(":", 1)[1].split("/")[0]

    async def scenario(url):
        link = PipelinedRedis(url)
        try:
            return await link.execute("ACL", "WHOAMI")
        finally:
            await link.close()

    try:
        assert asyncio.run(scenario(f"redis://svc:s3cret@127.0.0.1:{port}/2")) == b"svc"
        with pytest.raises(AuthenticationError, match="WRONGPASS"):
            asyncio.run(scenario(f"redis://svc:wrong@127.0.0.1:{port}/2"))
    finally:
        client.execute_command("ACL", "DELUSER", "svc")


def test_refused_silent_and_dropped_connections_raise_redis_errors():
    async def scenario():
        refused = PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await refused.execute("PING")

        peers: list[asyncio.StreamWriter] = []

        async def silent(reader, writer):  # reads commands, never answers
            peers.append(writer)
            while await reader.read(1024):
                pass

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        began = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"no reply from Redis within 0\.3 s"):
            await asyncio.gather(link.execute("PING"), link.execute("PING"))
        waited = time.monotonic() - began

        pending = asyncio.ensure_future(link.execute("PING"))  # a new connection, then the server drops it
        while len(peers) < 2:
            await asyncio.sleep(0.01)
        peers[-1].close()
        with pytest.raises(RedisConnectionError, match="connection to Redis lost"):
            await pending
        await link.close()
        server.close()
        return waited

    waited = asyncio.run(scenario())
    assert 0.3 <= waited < 1.0


def test_tls_options_follow_redis_py_url_parameters():
    import ssl

    from redis.asyncio.connection import parse_url

    from bento.resp import _tls_context

    strict = _tls_context(parse_url("rediss://h:6380/0"))
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    loose = _tls_context(parse_url("rediss://h:6380/0?ssl_cert_reqs=none"))
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname
    named = _tls_context(parse_url("rediss://h:6380/0?ssl_check_hostname=false"))
    assert named.verify_mode == ssl.CERT_REQUIRED and not named.check_hostname


def test_a_tls_redis_answers_over_rediss(tmp_path):
    """A private redis-server with TLS only (a self-signed CA made with openssl), reached with a rediss:// URL."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")  # the Debian images CI and users run on have it
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "redis.pem", tmp_path / "redis.key"
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            *subj,
        ],
        check=True,
        capture_output=True,
    )
    shutil.copy(cert, ca)
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    async def scenario():
        deadline = time.monotonic() + 10
        while True:
            link = PipelinedRedis(f"rediss://127.0.0.1:{port}/3?ssl_ca_certs={ca}")
            try:
                return await link.execute("PING"), await link.execute("CLIENT", "INFO")
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
            finally:
                await link.close()

    try:
        pong, info = asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert pong == b"PONG" and b" db=3 " in info
