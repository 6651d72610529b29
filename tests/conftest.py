"""Shared fixtures: the reference data folder, private Redis, PostgreSQL and S3 servers, and settings in tmp dirs."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import redis
import s3fs
from support import SHARED_DATA
from support.postgres import postgres_bindir
from support.service import free_port, start_redis


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (expects ../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """A private redis-server on a free port (Debian package `redis-server`, installed by .ci/run)."""
    try:
        proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def client(redis_url) -> redis.Redis:
    """A client of the session's redis-server (shared: use `prefix` for keys)."""
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def prefix() -> str:
    """Keys of one test only: the session's Redis is shared."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pushgateway_url(tmp_path_factory) -> str:
    """A private Prometheus Pushgateway on a free port (Debian package `prometheus-pushgateway`, installed by
    scripts/ensure-test-services.sh)."""
    from stockpred_core.processes import wait_for_http

    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway is not installed: run .ci/run or `apt-get install prometheus-pushgateway`")
    port = free_port()
    workdir = tmp_path_factory.mktemp("pushgateway")
    proc = subprocess.Popen(
        # Debian's build persists to /var/lib/prometheus by default: keep this one's state in its temp dir
        [binary, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={workdir / 'pushgateway.data'}"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_for_http(f"{url}/-/ready", proc, timeout=20, interval=0.1):
        proc.kill()
        pytest.fail(f"prometheus-pushgateway did not start on port {port}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@dataclass(frozen=True)
class PostgresServer:
    """A private PostgreSQL server (trust auth on 127.0.0.1); `database()` creates a fresh database per caller."""

    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def database(self, name: str) -> str:
        """Create database `name` (dropping an older one of that name) and return its SQLAlchemy URL."""
        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """A private PostgreSQL on a free port in a temp dir (Debian package `postgresql`, installed by .ci/run).

    initdb refuses to run as root, so as root the server runs as the `postgres` user (or `nobody`), in a directory
    that user owns: pytest's own tmp dirs are private to root.
    """
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found: run scripts/ensure-test-services.sh (apt: postgresql)")
    workdir = Path(tempfile.mkdtemp(prefix="stockpred-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        accounts = [a for a in (_account("postgres"), _account("nobody")) if a is not None]
        if not accounts or shutil.which("runuser") is None:
            pytest.fail("running as root needs a `postgres` or `nobody` account and `runuser` to start PostgreSQL")
        os.chown(workdir, accounts[0].pw_uid, accounts[0].pw_gid)
        as_user = ["runuser", "-u", accounts[0].pw_name, "--"]
    data, port = workdir / "data", free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "check": True}
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
    subprocess.run([*as_user, *initdb], **quiet)
    options = (
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*pg_ctl, "-l", str(workdir / "server.log"), "-o", options, "-w", "-t", "60", "start"], **quiet)
    except subprocess.CalledProcessError:
        log = (workdir / "server.log").read_text() if (workdir / "server.log").exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start on port {port}:\n{log[-2000:]}")
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres")
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        shutil.rmtree(workdir, ignore_errors=True)


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A private S3-compatible server (moto in server mode) on a free port; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"moto server did not start on port {port}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> Iterator[str]:
    """A fresh bucket on the private S3 server, with the standard AWS variables pointing at it; the bucket's name.

    s3fs (the lake) and boto3 (MLflow artifacts) both read AWS_ENDPOINT_URL, as they do in a cluster that uses an
    S3-compatible store; on AWS itself the variable is simply unset.
    """
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem keeps the endpoint it first connected to
    bucket = f"stockpred-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()
