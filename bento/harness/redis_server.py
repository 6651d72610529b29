"""A private redis-server on a free loopback port, without persistence."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_redis(url: str, proc: subprocess.Popen | None = None, timeout: float = 20) -> redis.Redis:
    """A client once `url` answers PING; redis.ConnectionError when `proc` exits or `timeout` passes first."""
    client, deadline = redis.Redis.from_url(url), time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_redis(workdir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """redis-server on 127.0.0.1:`port` (a free one by default), answering PING: (the process, its URL)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run .ci/run or `apt-get install redis-server`")
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url, proc)
    except redis.ConnectionError as exc:
        proc.kill()
        raise RuntimeError(f"redis-server did not start on port {port}") from exc
    return proc, url
