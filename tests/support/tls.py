"""Redis as deploy/k8s runs it, for the tests: a CA and a server certificate made per run (as cert-manager writes the
`redis-tls` Secret), and redis-server on the StatefulSet's command line and the deployed redis.conf, only its paths
and port made local. Clients reach it as the manifests configure them: `rediss://`, the CA, the password."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support import ROOT

REDIS_DEPLOY = ROOT / "deploy" / "k8s" / "base" / "redis"
# what every Redis client of deploy/k8s connects with: TLS, the server's certificate checked against the mounted CA
REDIS_CA_DIR = "/etc/stockpred/redis-tls"
REDIS_URL = f"rediss://:$(REDIS_PASSWORD)@redis:6379/0?ssl_cert_reqs=required&ssl_ca_certs={REDIS_CA_DIR}/ca.crt"


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


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(root: Path) -> Path:
    """ca.crt, tls.crt and tls.key in `root` as the `redis-tls` Secret holds them; other-ca.crt beside them."""
    root.mkdir(parents=True, exist_ok=True)
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("stockpred-internal-ca", "stockpred-internal-ca", ca_key, ca_key, True)
    sans = [x509.DNSName("localhost"), x509.DNSName("redis"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    (root / "ca.crt").write_bytes(_pem(ca))
    (root / "tls.crt").write_bytes(_pem(certificate("redis", "stockpred-internal-ca", server_key, ca_key, False, sans)))
    (root / "tls.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (root / "other-ca.crt").write_bytes(_pem(certificate("other", "other", other_key, other_key, True)))
    return root


def deployed_redis(workdir: Path, port: int, password: str, pki: Path, drop: tuple[str, ...] = ()) -> subprocess.Popen:
    """redis-server with the StatefulSet's command line and redis.conf: the TLS files from `pki`, the TLS port
    `port`, loopback only; config lines starting with one of `drop` left out."""
    conf = (REDIS_DEPLOY / "redis.conf").read_text()
    assert "port 0" in conf and "tls-port 6379" in conf, "Redis listens on TLS only"
    for deployed, here in {
        "/tls/": f"{pki}/",
        "tls-port 6379": f"tls-port {port}",
        "bind 0.0.0.0": "bind 127.0.0.1",
    }.items():
        conf = conf.replace(deployed, here)
    conf = "\n".join(line for line in conf.splitlines() if not line.startswith(drop or ("\0",)))
    (workdir / "redis.conf").write_text(conf)
    manifest = yaml.safe_load((REDIS_DEPLOY / "statefulset.yaml").read_text())
    command = manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    local = {"/etc/redis/redis.conf": str(workdir / "redis.conf"), "/data": str(workdir), "$(REDIS_PASSWORD)": password}
    return subprocess.Popen(
        [shutil.which(command[0]), *(local.get(arg, arg) for arg in command[1:])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def tls_url(redis_url_template: str, password: str, port: int, ca: Path, database: int = 0) -> str:
    """The manifests' STOCKPRED_REDIS_URL (`redis_url_template`) with this run's password, port and CA path."""
    return (
        redis_url_template.replace("$(REDIS_PASSWORD)", password)
        .replace("@redis:6379/0", f"@localhost:{port}/{database}")
        .replace(f"{REDIS_CA_DIR}/ca.crt", str(ca))
    )
