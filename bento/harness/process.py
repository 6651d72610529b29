"""`bentoml serve` in a subprocess of its own process group, on a free port, until it answers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bento.harness.redis_server import free_port
from stockpred_core.processes import stop_group, wait_for_http

PROJECT = Path(__file__).resolve().parents[2]


@contextmanager
def serve(
    env: dict[str, str],
    log_path: Path,
    ready_timeout: float = 120,
    target: str = "bento.service:StockPredictor",
    cwd: Path = PROJECT,
    ready_path: str = "/readyz",
) -> Iterator[str]:
    """`bentoml serve <target>` with `env`; yields the base URL once `ready_path` answers 200 (/livez for a service
    that is expected not to become ready)."""
    port = free_port()
    full_env = {**os.environ, **env, "BENTOML_HOME": str(log_path.parent / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", target, "--port", str(port)],
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(f"{base}{ready_path}", proc, ready_timeout):
            raise RuntimeError(f"bentoml serve did not answer {ready_path}: {log_path.read_text()[-4000:]}")
        yield base
    finally:
        stop_group(proc)
