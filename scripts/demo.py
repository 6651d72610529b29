"""`make demo`: materialize the whole graph on the embedded default, serve the champion, ask it for predictions;
then replay a real recorded session through the intraday path (scripts/demo_intraday.py), on port PORT + 1, and run
the recorded news, tweets, filings and macro series through the alternative assets into a model
(scripts/demo_alternative.py).

Runs go to the Dagster instance under $DAGSTER_HOME, so `make dev` shows them afterwards in the UI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import dagster as dg

from stockpred_assets.definitions import defs
from stockpred_assets.evaluation.assets import HEADLINE
from stockpred_assets.evaluation.scoring import week_monday
from stockpred_core.data import calendar
from stockpred_core.io.model_card import CHAMPION_ALIAS, read_model_card
from stockpred_core.processes import stop_group, wait_for_http

logging.getLogger("mlflow").setLevel(logging.WARNING)  # after mlflow configured its loggers on import

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SCORED_SESSIONS = 10  # the model is trained for the week holding the 10th session back: the sessions since are scored
# the scored sessions: their predictions, drift reports, the report over every prediction so far, the daily insights
SCORED = [dg.AssetKey(k) for k in ("predictions", "drift_report", "backtest_history", "insights")]
INTRADAY = Path(__file__).with_name("demo_intraday.py")
ALTERNATIVE = Path(__file__).with_name("demo_alternative.py")
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the recorded session and the S&P 500 file
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def execute(step: str, job: dg.JobDefinition, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    began = time.monotonic()
    run_config = {**QUIET, **kwargs.pop("run_config", {})}
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False, **kwargs)
    status = "ok" if result.success else "FAILED"
    print(f"  {step:<28} {status} in {time.monotonic() - began:5.1f}s  run {result.run_id[:8]}")
    return result


def champion() -> dict[str, str] | None:
    """The registry's champion: version, family and the week it is in force from."""
    tracking = defs.resources["mlflow_resource"]
    card = read_model_card(tracking.client(), tracking.registered_model, CHAMPION_ALIAS)
    if card is None:
        return None
    since = card.champion_from
    return {"version": card.version, "family": card.family, "since": f"{since:%Y-%m-%d}" if since else "-"}


def materialize(instance: dg.DagsterInstance, start: str, end: str, week: str) -> dict:
    """Run what the automation runs: daily data over the range (one run), the week's models and promotion gate,
    the walk-forward backtest of the champion's family, serving, then the sessions since the week's Monday scored by
    the champion, their drift reports, the report over every prediction so far and the daily insights reports."""
    daily = execute("daily_data_job", defs.resolve_job_def("daily_data_job"), instance, tags=_range(start, end))
    if not daily.success:
        sys.exit(f"daily_data_job failed: see `make dev` -> Runs -> {daily.run_id}")
    weekly_job = defs.resolve_job_def("weekly_training_job")
    models = [k for k in weekly_job.asset_layer.executable_asset_keys if k != dg.AssetKey("backtest_report")]
    weekly = execute("weekly_training_job (models)", weekly_job, instance, partition_key=week, asset_selection=models)
    print_models(weekly)
    best = champion()
    if best is None:
        sys.exit("no champion: the promotion gate blocked this week's challenger and none was promoted before")
    print(f"\nChampion: {best['family']} v{best['version']} (in force from the week of {best['since']})")
    family = {"ops": {"backtest_report": {"config": {"family": best["family"]}}}}
    backtest = execute(
        "weekly_training_job (backtest)", weekly_job, instance, partition_key=week,
        asset_selection=[dg.AssetKey("backtest_report")], run_config=family,
    )  # fmt: skip
    serving = execute("serving_job", defs.resolve_job_def("serving_job"), instance)
    scored = execute(
        "predictions, drift, history", defs.resolve_implicit_global_asset_job_def(), instance,
        tags=_range(week, end), asset_selection=SCORED,
    )  # fmt: skip
    for step, result in (("backtest", backtest), ("serving_job", serving), ("scoring", scored)):
        if not result.success:
            sys.exit(f"{step} failed: see `make dev` -> Runs -> {result.run_id}")
    return {"champion": best, "backtest": backtest, "scored": scored}


def _range(start: str, end: str) -> dict[str, str]:
    return {RANGE_START_TAG: start, RANGE_END_TAG: end}


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict | None:
    events = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in events[-1].metadata.items()} if events else None


def _table(value: dg.TableMetadataValue) -> str:
    return pd.DataFrame([record.data for record in value.records]).to_string(index=False)


def print_models(result: dg.ExecuteInProcessResult) -> None:
    """The week's families side by side, the challenger picked among them and what the promotion gate decided."""
    meta = _metadata(result, "challenger_model")
    if meta is None:
        sys.exit(f"weekly_training_job failed: see `make dev` -> Runs -> {result.run_id}")
    print(f"\nThis week's models (challenger: {meta['challenger_family']} v{meta['challenger_version']}):")
    print(_table(meta["families"]))
    for check in result.get_asset_check_evaluations():
        reasons = check.metadata.get("reasons")
        print(f"  gate {check.asset_check_key.name}: {'passed' if check.passed else 'blocked'}", end="")
        print(f" {reasons.value}" if reasons is not None and reasons.value else "")


def print_report(meta: dict, what: str) -> None:
    print(f"\n{what}, out of sample {meta['oos_range']}, {meta['oos_predictions']} predictions:")
    print(f"  portfolio figures: {meta['primary_strategy']} (TopK-dropout), net of 5/15 bps costs unless _gross")
    for key in HEADLINE:
        print(f"  {key:<34} {meta[key]: .4f}")
    print(f"  report: {meta['report_html']} (open it in a browser; plots also in the Dagster UI and MLflow)")


def print_drift(result: dg.ExecuteInProcessResult) -> None:
    events = result.asset_materializations_for_node("drift_report")
    if not events:
        return
    meta = {k: v.value for k, v in events[-1].metadata.items()}
    shown = {k: v for k, v in meta.items() if isinstance(v, (int, float, str)) and len(str(v)) < 80}
    print(f"\nDrift report ({events[-1].partition}):")
    for key, value in list(shown.items())[:12]:
        print(f"  {key:<28} {value}")


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


def intraday(port: int) -> None:
    """The intraday part (scripts/demo_intraday.py): a recorded session through the stream worker and push."""
    missing = [p for p in (RECORDED / "intraday" / "lean", RECORDED / "market") if not p.is_dir()]
    if missing or shutil.which("redis-server") is None:
        why = f"{missing[0]} is missing" if missing else "redis-server is not installed"
        print(f"\nIntraday part skipped: {why}")
        return
    if subprocess.run([sys.executable, str(INTRADAY), "--port", str(port)]).returncode != 0:
        sys.exit("the intraday part failed")


def alternative() -> None:
    """The alternative-data part (scripts/demo_alternative.py): its own data folder, the same Dagster instance."""
    if subprocess.run([sys.executable, str(ALTERNATIVE)]).returncode != 0:
        sys.exit("the alternative-data part failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--years", type=float, default=3.0, help="history to materialize")
    parser.add_argument("--port", type=int, default=3000, help="the prediction service's port (make demo PORT=...)")
    args = parser.parse_args()

    last = calendar.previous_sessions(pd.Timestamp.now(tz="America/New_York").date(), 1)[-1]
    first = calendar.sessions(last - pd.DateOffset(years=args.years), last)[0]
    week = f"{week_monday(calendar.previous_sessions(last, SCORED_SESSIONS)[0]):%Y-%m-%d}"
    start, end = f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"
    print(f"Materializing {start}..{end} (daily partitions, one run), the model for the week of {week}, serving:")
    results = materialize(dg.DagsterInstance.get(), start, end, week)
    family = results["champion"]["family"]
    name = f"{family} v{results['champion']['version']}"
    print_report(
        _metadata(results["backtest"], "backtest_report"),
        f"Walk-forward backtest of the champion's family ({family}, refit fold by fold)",
    )
    history = _metadata(results["scored"], "backtest_history")
    if history is not None:
        print_report(
            history, f"backtest_history: the predictions of the champion in force each day ({name} from {week})"
        )
    print_drift(results["scored"])
    serve_and_predict(args.port, ["S00000", "S00042", "NOPE"])
    intraday(args.port + 1)
    alternative()
    print_next(_metadata(results["scored"], "insights"))


def print_next(insights: dict | None) -> None:
    """Where to look afterwards: the analysts' dashboard (started apart: it runs until stopped) and the newest daily
    insights report."""
    port = os.environ.get("DASHBOARD_PORT", "8050")
    print(f"\nDashboard: `make dashboard`, then open http://127.0.0.1:{port}/ (signals, tickers, model health, alerts)")
    if insights is not None:
        print(f"Daily insights report ({insights['days']} sessions rendered, the newest): {insights['report']}")
    else:
        print("Daily insights report: the insights asset did not run")


if __name__ == "__main__":
    main()
