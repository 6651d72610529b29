"""The whole graph materialized into a tmp dir, then the champion served over real HTTP by `bentoml serve`."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import httpx
import pandas as pd
import pytest
import redis
import yaml
from support import ROOT
from support.doc_commands import doc_command
from support.env import environment, local_env
from support.service import free_port, serve

from stockpred_assets.definitions import build_definitions
from stockpred_assets.evaluation.assets import HEADLINE
from stockpred_core.io.lake import Lake
from stockpred_core.io.model_registry import champion_version
from stockpred_core.io.online_store import fetch_vector
from stockpred_core.models.families import torch_available
from stockpred_core.processes import stop_group, wait_for_http
from stockpred_core.settings import load_settings
from stockpred_resources.tracking import MLflowResource

pytestmark = pytest.mark.slow

START, END, WEEK = "2022-07-01", "2025-06-27", "2025-06-23"
UNIVERSE = 30
FEW_TRIALS = {
    "ops": {"lgbm_model": {"config": {"n_trials": 10}}}
    | ({"mlp_model": {"config": {"epochs": 8}}} if torch_available() else {})
}
FAMILIES = {"lightgbm", "linear", "momentum"} | ({"torch_mlp"} if torch_available() else set())
PROJECT = ROOT


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, redis_url):
    """Runs the daily job over three years (one run), the week's training job and the serving job."""
    root = tmp_path_factory.mktemp("stockpred")
    env = local_env(
        root, STOCKPRED_UNIVERSE_SIZE=str(UNIVERSE), STOCKPRED_REDIS_URL=redis_url, BENTOML_HOME=str(root / "bentoml")
    )
    with environment(env):
        defs = build_definitions()
        instance = dg.DagsterInstance.ephemeral()
        runs = {
            "daily": defs.resolve_job_def("daily_data_job").execute_in_process(
                instance=instance,
                tags={"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": END},
            ),
            "weekly": defs.resolve_job_def("weekly_training_job").execute_in_process(
                instance=instance, partition_key=WEEK, run_config=FEW_TRIALS
            ),
            "serving": defs.resolve_job_def("serving_job").execute_in_process(instance=instance),
        }
        yield {"root": root, "env": env, "defs": defs, "instance": instance, "runs": runs, "settings": load_settings()}


def test_all_runs_succeed_and_report_metadata(pipeline):
    runs = pipeline["runs"]
    assert all(r.success for r in runs.values())
    raw = runs["daily"].asset_materializations_for_node("raw_bars_simulated")
    assert len(raw) == len(pd.bdate_range(START, END))  # one event per weekday partition, from a single run
    checks = {e.asset_check_key.name: e.passed for e in runs["daily"].get_asset_check_evaluations()}
    assert checks["validated_bars_unique_and_consistent"] and checks["validated_bars_complete"]
    gate = runs["weekly"].get_asset_check_evaluations()[0]
    assert gate.asset_check_key.name == "challenger_beats_champion" and gate.passed
    assert gate.metadata["champion_version"].value == "-"  # the first model only has to show a positive rank IC
    backtest = runs["weekly"].asset_materializations_for_node("backtest_report")[0].metadata
    plots = {"plot_cumulative_return", "plot_ic", "plot_drawdown"}
    assert set(HEADLINE) | plots | {"summary", "per_year", "report_html", "mlflow_run_id"} <= set(backtest)
    assert Path(backtest["report_html"].value).read_text().count("<img") == 3
    assert backtest["mlflow_logged_into"].value != "its own run"  # the week's lightgbm version's run


def test_the_serving_job_builds_the_bento_for_the_champion(pipeline):
    """The session's one `bentoml build` (the `bento` asset, as the champion-change sensor runs it): labelled with
    the champion, offline, shipping the service and the pure core only."""
    settings = pipeline["settings"]
    champion = champion_version(
        MLflowResource(tracking_uri=settings.mlflow_tracking_uri).client(), settings.registered_model
    )
    [event] = pipeline["runs"]["serving"].asset_materializations_for_node("bento")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["champion_version"] == str(champion.version) and meta["bento_tag"].startswith("stockpred:")
    bento_dir = Path(meta["path"])
    assert bento_dir == pipeline["root"] / "bentoml" / "bentos" / "stockpred" / meta["bento_tag"].split(":")[1]
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert manifest["service"] == "bento.service:StockPredictor"
    assert manifest["labels"]["champion_version"] == str(champion.version)
    assert manifest["services"][0]["config"]["resources"]["gpu"] == 1
    src = bento_dir / "src"
    assert (src / "bento" / "service.py").is_file() and (src / "stockpred_core" / "features" / "batch.py").is_file()
    assert not (src / "stockpred_assets").exists() and not (src / "stockpred_resources").exists()  # no Dagster
    assert not (src / "bento" / "harness").exists()  # the local harness (tests, benchmarks) is not shipped


def test_lake_catalog_and_registry(pipeline):
    settings = pipeline["settings"]
    lake = Lake(settings.lake_url)
    bars = lake.read_range("validated", "bars", START, END)
    sessions = bars["date"].nunique()
    assert len(bars) == sessions * UNIVERSE and not bars.duplicated(["date", "ticker"]).any()
    con = duckdb.connect(settings.duckdb_path, read_only=True)
    assert con.execute("SELECT count(*) FROM features").fetchone()[0] == len(bars)
    tracking = MLflowResource(tracking_uri=settings.mlflow_tracking_uri, registered_model=settings.registered_model)
    champion = champion_version(tracking.client(), settings.registered_model)
    assert champion is not None and champion.tags["dagster_partition"] == WEEK
    versions = tracking.client().search_model_versions(f"name = '{settings.registered_model}'")
    assert {v.tags["model_family"] for v in versions} == FAMILIES  # one version per family, the best promoted
    run = tracking.client().get_run(champion.run_id)
    assert run.data.params["cutoff"] == WEEK and run.data.params["test"].split("..")[1] < WEEK
    assert run.data.metrics["cv_rank_ic"] == max(
        tracking.client().get_run(v.run_id).data.metrics["cv_rank_ic"] for v in versions
    )
    fold_ics = tracking.client().get_metric_history(run.info.run_id, "fold_rank_ic")
    assert [m.step for m in fold_ics] == [0, 1, 2]
    run = tracking.client().get_run(next(v.run_id for v in versions if v.tags["model_family"] == "lightgbm"))
    trials = tracking.client().search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert len(trials) == 10  # the Optuna trials, as nested runs
    assert len(run.data.params["data_fingerprint"]) == 16
    artifacts = {a.path for a in tracking.client().list_artifacts(run.info.run_id)}
    assert {"feature_importance.png", "feature_importance.json"} <= artifacts
    assert all("valid_rank_ic" in t.data.metrics for t in trials if t.data.tags["optuna_state"] == "complete")


def test_next_weeks_challenger_must_beat_the_champion_to_replace_it(pipeline):
    with environment(pipeline["env"]):
        run = (
            pipeline["defs"]
            .resolve_job_def("weekly_training_job")
            .execute_in_process(
                instance=pipeline["instance"],
                partition_key="2025-06-30",
                raise_on_error=False,
                run_config=FEW_TRIALS,
                asset_selection=[dg.AssetKey(k) for k in ("linear_model", "challenger_model", "champion_model")],
            )
        )
        tracking = MLflowResource(tracking_uri=pipeline["settings"].mlflow_tracking_uri)
        champion = champion_version(tracking.client(), pipeline["settings"].registered_model)
    gate = run.get_asset_check_evaluations()[0]
    meta = {k: v.value for k, v in gate.metadata.items()}
    # the first week registered versions 1-4 (one per family); this week's only model is version 5
    assert meta["challenger_version"] == "5" and meta["challenger_family"] == "linear"
    assert meta["champion_version"] in {"1", "2", "3", "4"}
    beats = meta["challenger_rank_ic"] > meta["champion_rank_ic"] + meta["margin"]
    assert gate.passed == beats and run.success == beats
    assert str(champion.version) == ("5" if beats else meta["champion_version"])


def test_online_features_are_in_the_lake_and_redis(pipeline, redis_url):
    latest = Lake(pipeline["settings"].lake_url).read_table("serving", "online_features")
    assert len(latest) == UNIVERSE and (latest["date"] == pd.Timestamp(END)).all()
    vector = fetch_vector(redis.Redis.from_url(redis_url), "S00007")
    assert vector["date"] == END and vector["rsi_14"] == pytest.approx(
        latest.set_index("ticker").loc["S00007", "rsi_14"]
    )


def test_missing_upstream_partitions_fail_with_a_clear_error(pipeline):
    with environment(pipeline["env"]):
        result = (
            pipeline["defs"]
            .resolve_job_def("daily_data_job")
            .execute_in_process(
                instance=pipeline["instance"],
                partition_key="2022-01-03",
                asset_selection=[dg.AssetKey("validated_bars")],
                raise_on_error=False,
            )
        )
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "raw/bars_simulated lacks 1 partition(s), first 2022-01-03" in failure.to_string()


def _wait_ready(base: str, seconds: float = 60) -> int:
    deadline, status = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/readyz", timeout=5).status_code
        if status == 200:
            break
        time.sleep(0.5)
    return status


def test_service_answers_predictions_over_http(pipeline, tmp_path):
    env = {k: v for k, v in pipeline["env"].items() if k != "STOCKPRED_REDIS_URL"}
    with serve(env, tmp_path / "bento.log", ready_path="/livez") as base:
        assert _wait_ready(base) == 200
        assert httpx.get(f"{base}/livez").status_code == 200
        answer = httpx.post(f"{base}/predict", json={"ticker": "s00003"}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        champion = champion_version(
            MLflowResource(tracking_uri=pipeline["settings"].mlflow_tracking_uri).client(),
            pipeline["settings"].registered_model,
        )
        assert body["ticker"] == "S00003" and body["model_version"] == str(champion.version)
        assert body["feature_date"] == END and body["horizon_sessions"] == 5
        assert body["predicted_price"] == pytest.approx(body["last_close"] * (1 + body["predicted_return"]))
        assert body["interval_low"] < body["predicted_return"] < body["interval_high"]
        # up to five: the momentum baseline, when it wins, has a single feature
        assert 1 <= len(body["top_contributions"]) <= 5 and body["cached"] is False

        unknown = httpx.post(f"{base}/predict", json={"ticker": "NOPE"}, timeout=30)
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "unknown ticker 'NOPE': no online features for it (30 tickers known)"}
        missing = httpx.post(f"{base}/predict", json={"symbol": "S00003"}, timeout=30)
        assert missing.status_code == 400 and "ticker" in missing.text
        assert httpx.post(f"{base}/predict", content=b"not json", timeout=30).status_code == 400
        metrics = httpx.get(f"{base}/metrics").text
        assert "bentoml_service_request_total" in metrics and 'endpoint="/predict"' in metrics


def test_service_without_a_model_is_alive_but_not_ready(tmp_path):
    with serve(local_env(tmp_path / "empty"), tmp_path / "bento.log", ready_path="/livez") as base:
        assert httpx.get(f"{base}/livez").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503
        answer = httpx.post(f"{base}/predict", json={"ticker": "S00001"}, timeout=30)
        assert answer.status_code == 503 and "no champion model" in answer.text


def test_dagster_cli_validates_the_code_location(tmp_path):
    env = {**os.environ, **local_env(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Validation successful" in out.stdout + out.stderr


def test_docs_inspection_commands_run_as_written(pipeline, tmp_path):
    """docs/operations.md's DuckDB one-liner and `mlflow ui` command, from a folder shaped like the checkout whose
    data/ is this pipeline's; the plots recorded in Dagster's metadata are served by that MLflow UI."""
    (tmp_path / "data").symlink_to(pipeline["root"])
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    duck = subprocess.run(
        ["bash", "-c", doc_command(r"^\.venv/bin/python -c \"import duckdb")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert duck.returncode == 0 and "ticker" in duck.stdout and "5 rows" in duck.stdout, duck.stdout + duck.stderr

    command, port = doc_command(r"^\.venv/bin/mlflow ui "), free_port()
    assert "--port 5000" in command
    ui = subprocess.Popen(
        ["bash", "-c", f"exec {command.replace('--port 5000', f'--port {port}')}"],
        cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for_http(f"{base}/health", ui, timeout=120)
        models = httpx.get(f"{base}/ajax-api/2.0/mlflow/registered-models/search", timeout=30).json()
        assert pipeline["settings"].registered_model in {m["name"] for m in models["registered_models"]}
        backtest = pipeline["runs"]["weekly"].asset_materializations_for_node("backtest_report")[0].metadata
        for name in ("plot_cumulative_return", "plot_ic", "plot_drawdown"):
            url = urlsplit(re.fullmatch(r"!\[[^\]]*\]\((\S+)\)", backtest[name].value)[1])
            image = httpx.get(f"{base}{url.path}?{url.query}", timeout=30)
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG"), (name, image.status_code)
    finally:
        stop_group(ui)
