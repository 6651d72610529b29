"""`make dev`: Dagster's webserver and daemon (`dagster dev`) and, over the local MLflow store, the MLflow UI that
the run links and plots in Dagster's metadata point at. Ctrl-C stops both."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from stockpred_core.processes import stop_group
from stockpred_core.settings import load_settings

BIN = Path(sys.executable).parent
# `dagster dev` says once that the `dg` CLI (another package, not used here) supersedes it: nothing to act on.
QUIET_DAGSTER_DEV = "ignore:Function `dev_command` is superseded"
QUIET_MLFLOW_UI = "ignore:starlette.middleware.wsgi is deprecated"


def start_mlflow_ui(tracking_uri: str, port: int) -> subprocess.Popen | None:
    """`mlflow ui` over a local store (SQLite or files), in its own process group; None for a tracking server, which
    serves its own UI."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    command = [str(BIN / "mlflow"), "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1", "--workers", "1"]
    # its server imports a Starlette module that Starlette deprecates: MLflow's to change, nothing to act on here
    env = {**os.environ, "PYTHONWARNINGS": QUIET_MLFLOW_UI}
    return subprocess.Popen([*command, "--port", str(port)], env=env, start_new_session=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="Dagster's webserver (make dev PORT=...)")
    parser.add_argument("--mlflow-port", type=int, default=5000, help="the MLflow UI (make dev MLFLOW_PORT=...)")
    args = parser.parse_args()
    settings = load_settings()
    mlflow_ui = start_mlflow_ui(settings.mlflow_tracking_uri, args.mlflow_port)
    where = f"http://127.0.0.1:{args.mlflow_port}" if mlflow_ui else settings.mlflow_tracking_uri
    print(f"MLflow UI: {where} (run links and plots in Dagster's metadata use {settings.mlflow_ui_url})", flush=True)
    # the run-failure alerts link runs in this webserver unless STOCKPRED_DAGSTER_UI_URL says otherwise
    env = {
        "STOCKPRED_DAGSTER_UI_URL": f"http://127.0.0.1:{args.port}",
        **os.environ,
        "PYTHONWARNINGS": QUIET_DAGSTER_DEV,
    }
    dagster = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)], env=env
    )
    # make forwards SIGTERM to this process only: pass it on so dagster dev shuts its webserver and daemon down
    signal.signal(signal.SIGTERM, lambda *_: dagster.send_signal(signal.SIGTERM))
    try:
        try:
            return dagster.wait()
        except KeyboardInterrupt:  # Ctrl-C reached dagster dev too (same process group): let it shut down
            return dagster.wait()
    finally:
        if mlflow_ui is not None:
            stop_group(mlflow_ui)


if __name__ == "__main__":
    sys.exit(main())
