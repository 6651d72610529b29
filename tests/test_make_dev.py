"""`make dev` as docs/operations.md shows it, on other ports: Dagster's UI and the MLflow UI come up quietly over the
same stores, and Ctrl-C stops both."""

import os
import shlex
import signal
import socket
import subprocess
import time

import httpx
import pytest
from support import ROOT
from support.doc_commands import doc_command
from support.env import local_env
from support.service import free_port

from stockpred_core.processes import wait_for_http

pytestmark = pytest.mark.slow  # about a minute: dagster dev loads the code location in its own process

PROJECT = ROOT
LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
NOISE = ("Warning:", "Traceback")  # Python warnings (BetaWarning: ..., SupersessionWarning: ...) and errors


def _as_in_a_terminal() -> None:
    """Ctrl-C's SIGINT as a terminal delivers it: a suite started in the background by a shell without job control
    (`make test &` in a script) runs with SIGINT ignored, and ignored signals are inherited, so `make dev` would never
    see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _location_loaded(base: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        answer = httpx.post(f"{base}/graphql", json={"query": LOCATION_STATUS}, timeout=10).json()
        entries = answer["data"]["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            return True
        time.sleep(1)
    return False


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_make_dev_serves_dagster_and_mlflow_on_the_given_ports_and_ctrl_c_stops_both(tmp_path):
    port, mlflow_port = free_port(), free_port()
    env = {**os.environ, **local_env(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    env.pop("STOCKPRED_MLFLOW_UI_URL", None)
    log = tmp_path / "make-dev.log"
    with log.open("w") as out:
        # -o: the venv is installed already (by `make test`); the documented `make dev PORT=... MLFLOW_PORT=...`
        ports = {"PORT": port, "MLFLOW_PORT": mlflow_port}
        make, *args = shlex.split(doc_command(r"^make dev PORT=\d+ MLFLOW_PORT=\d+$"))
        args = [f"{a.split('=')[0]}={ports[a.split('=')[0]]}" if "=" in a else a for a in args]
        proc = subprocess.Popen(
            [make, "-o", ".venv/.installed-cpu", *args],
            cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_as_in_a_terminal,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for_http(f"{base}/server_info", proc, timeout=240), log.read_text()
        assert _location_loaded(base, proc, timeout=240), log.read_text()
        assert wait_for_http(f"http://127.0.0.1:{mlflow_port}/health", proc, timeout=120), log.read_text()
        experiments = httpx.get(f"http://127.0.0.1:{mlflow_port}/ajax-api/2.0/mlflow/experiments/search?max_results=5")
        assert experiments.status_code == 200  # over the settings' store (a fresh SQLite file under the data dir)
        assert (tmp_path / "data" / "mlflow.db").exists()
        time.sleep(5)  # the daemon's first ticks
        output = log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground process group
        proc.wait(timeout=120)
    assert f"MLflow UI: http://127.0.0.1:{mlflow_port} (run links and plots in Dagster's metadata use " in output
    assert f"http://127.0.0.1:{mlflow_port})" in output  # the Makefile points the links at the same port
    assert not [word for word in NOISE if word in output], output
    assert _refused(port) and _refused(mlflow_port), log.read_text()
