"""`make demo`: materialize the whole graph on the embedded default, serve the champion, ask it for predictions.

Runs go to the Dagster instance under $DAGSTER_HOME, so `make dev` shows them afterwards in the UI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import warnings

import httpx
import pandas as pd

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
warnings.filterwarnings("ignore", module="dagster")
warnings.filterwarnings("ignore", message=".*(beta|preview).*")

import dagster as dg  # noqa: E402

from stockpred_assets.core import calendar  # noqa: E402
from stockpred_assets.definitions import defs  # noqa: E402
from stockpred_assets.evaluation.assets import HEADLINE  # noqa: E402
from stockpred_assets.partitions import weeks  # noqa: E402
from stockpred_resources.readiness import stop_group, wait_for_http  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)  # after mlflow configured its loggers on import

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
MONITORED = [dg.AssetKey("predictions"), dg.AssetKey("drift_report")]
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def materialize(instance: dg.DagsterInstance, start: str, end: str, week: str) -> dict:
    """Run what the automation runs: daily data over the range (one run), the week's models, serving, then the
    week's sessions scored by the new champion and their drift report (what the daily chain does from now on)."""
    steps = [
        ("daily_data_job", {"tags": {RANGE_START_TAG: start, RANGE_END_TAG: end}}),
        ("weekly_training_job", {"partition_key": week}),
        ("serving_job", {}),
    ]
    if week <= end:
        scored = {"tags": {RANGE_START_TAG: max(week, start), RANGE_END_TAG: end}, "asset_selection": MONITORED}
        steps.append(("predictions+drift", scored))
    results = {}
    for job_name, kwargs in steps:
        began = time.monotonic()
        job = (
            defs.resolve_implicit_global_asset_job_def()
            if "asset_selection" in kwargs
            else defs.resolve_job_def(job_name)
        )
        result = job.execute_in_process(instance=instance, run_config=QUIET, **kwargs)
        print(
            f"  {job_name:<20} {'ok' if result.success else 'FAILED'} "
            f"in {time.monotonic() - began:5.1f}s  run {result.run_id[:8]}"
        )
        if not result.success:
            sys.exit(f"{job_name} failed: see `make dev` -> Runs -> {result.run_id}")
        results[job_name] = result
    return results


def print_drift(result: dg.ExecuteInProcessResult) -> None:
    events = result.asset_materializations_for_node("drift_report")
    if not events:
        return
    meta = {k: v.value for k, v in events[-1].metadata.items()}
    shown = {k: v for k, v in meta.items() if isinstance(v, (int, float, str)) and len(str(v)) < 80}
    print(f"\nDrift report ({events[-1].partition}):")
    for key, value in list(shown.items())[:12]:
        print(f"  {key:<28} {value}")


def print_models(result: dg.ExecuteInProcessResult) -> None:
    """The week's families side by side, the challenger picked among them and what the promotion gate decided."""
    meta = result.asset_materializations_for_node("challenger_model")[0].metadata
    print(f"\nThis week's models (challenger: {meta['challenger_family'].value} v{meta['challenger_version'].value}):")
    print(meta["families"].value)
    for check in result.get_asset_check_evaluations():
        reasons = check.metadata.get("reasons")
        print(f"  gate {check.asset_check_key.name}: {'passed' if check.passed else 'blocked'}", end="")
        print(f" {reasons.value}" if reasons is not None and reasons.value else "")


def print_backtest(result: dg.ExecuteInProcessResult) -> None:
    event = result.asset_materializations_for_node("backtest_report")[0]
    meta = {k: v.value for k, v in event.metadata.items() if not k.startswith("plot")}
    print(f"\nBacktest (walk-forward, out of sample {meta['oos_range']}, {meta['oos_predictions']} predictions):")
    print(f"  portfolio figures: {meta['primary_strategy']} (TopK-dropout), net of 5/15 bps costs unless _gross")
    for key in HEADLINE:
        print(f"  {key:<34} {meta[key]: .4f}")
    print(f"  report: {meta['report_html']} (open it in a browser; plots also in the Dagster UI and MLflow)")


def serve_and_predict(port: int, tickers: list[str]) -> None:
    """Start `bentoml serve`, wait for /readyz, POST /predict over HTTP, stop the server."""
    cmd = [sys.executable, "-m", "bentoml", "serve", "bento.service:StockPredictor", "--port", str(port)]
    server = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(f"{base}/readyz", server, timeout=180, interval=1.0):
            sys.exit(f"the service did not become ready (exit code {server.poll()})")
        print(f"\nService ready at {base}")
        for ticker in tickers:
            body = {"ticker": ticker}
            print(f"\n$ curl -s -X POST {base}/predict -H 'Content-Type: application/json' -d '{json.dumps(body)}'")
            answer = httpx.post(f"{base}/predict", json=body, timeout=30)
            print(f"HTTP {answer.status_code}")
            print(json.dumps(answer.json(), indent=2))
    finally:
        stop_group(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--years", type=float, default=3.0, help="history to materialize")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STOCKPRED_DEMO_PORT", "3000")))
    args = parser.parse_args()

    week = weeks.get_last_partition_key()
    last = calendar.previous_sessions(pd.Timestamp.now(tz="America/New_York").date(), 1)[-1]
    first = calendar.sessions(last - pd.DateOffset(years=args.years), last)[0]
    start, end = f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"
    print(f"Materializing {start}..{end} (daily partitions, one run), the model for week {week}, online features:")
    results = materialize(dg.DagsterInstance.get(), start, end, week)
    print_models(results["weekly_training_job"])
    print_backtest(results["weekly_training_job"])
    if "predictions+drift" in results:
        print_drift(results["predictions+drift"])
    serve_and_predict(args.port, ["S00000", "S00042", "NOPE"])


if __name__ == "__main__":
    main()
