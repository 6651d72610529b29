"""Redis as deployed (issue 23): deploy/k8s/base/redis/redis.conf run by a real redis-server with a CA and a server
certificate made for the run, and stockpred's clients connecting the way the manifests configure them (`rediss://`,
the CA's path, `ssl_cert_reqs=required`, the password): the service answers and caches through it; a client that
trusts another CA, a plaintext client and a client without the password are refused."""

import datetime
import ipaddress
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from k8s_manifests import K8S, REDIS_CA_DIR, REDIS_URL
from support.service import build_world, serve

from bento.harness.redis_server import free_port, wait_for_redis

PASSWORD = "tls-test-password"


def certificate(name: str, issuer_name: str, key, issuer_key, ca: bool, sans: list | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pem(path: Path, cert=None, key=None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


def make_pki(root: Path) -> Path:
    """ca.crt, tls.crt and tls.key as cert-manager writes the `redis-tls` Secret; other-ca.crt beside them."""
    root.mkdir(parents=True, exist_ok=True)
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("stockpred-internal-ca", "stockpred-internal-ca", ca_key, ca_key, True)
    sans = [x509.DNSName("localhost"), x509.DNSName("redis"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = certificate("redis", "stockpred-internal-ca", server_key, ca_key, False, sans)
    write_pem(root / "ca.crt", ca)
    write_pem(root / "tls.crt", server)
    write_pem(root / "tls.key", key=server_key)
    write_pem(root / "other-ca.crt", certificate("other", "other", other_key, other_key, True))
    return root


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """redis-server on the deployed redis.conf (TLS paths and port made local): (port, the CA's path)."""
    root = tmp_path_factory.mktemp("redis-tls")
    pki = make_pki(root / "tls")
    port = free_port()
    conf = (K8S / "base" / "redis" / "redis.conf").read_text()
    assert "port 0" in conf and "tls-port 6379" in conf
    local = {"/tls/": f"{pki}/", "tls-port 6379": f"tls-port {port}", "bind 0.0.0.0": "bind 127.0.0.1"}
    for deployed, here in local.items():
        conf = conf.replace(deployed, here)
    # the test world resets its database with FLUSHDB, which the deployed config disables for clients
    conf = "\n".join(line for line in conf.splitlines() if not line.startswith("rename-command FLUSHDB"))
    (root / "redis.conf").write_text(conf)
    proc = subprocess.Popen(
        ["redis-server", str(root / "redis.conf"), "--dir", str(root), "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_redis(url(port, pki / "ca.crt"), proc)
        yield port, pki
    finally:
        proc.terminate()
        proc.wait(10)


def url(port: int, ca: Path, database: int = 0) -> str:
    """The manifests' STOCKPRED_REDIS_URL with this run's password, port and CA path."""
    return (
        REDIS_URL.replace("$(REDIS_PASSWORD)", PASSWORD)
        .replace("@redis:6379/0", f"@localhost:{port}/{database}")
        .replace(f"{REDIS_CA_DIR}/ca.crt", str(ca))
    )


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
