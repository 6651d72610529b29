"""The code location loads; every job, schedule and sensor resolves; the graph's shape is snapshotted."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import lightgbm as lgb
import mlflow
import numpy as np
import pytest

from stockpred_assets.definitions import build_definitions
from stockpred_assets.ingestion.automation import daily_data_schedule
from stockpred_assets.serving.automation import champion_change_sensor
from stockpred_core.io.model_registry import CHAMPION_ALIAS
from stockpred_core.models.families import torch_available
from stockpred_resources.tracking import MLflowResource

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


def graph_shape(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    shape = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        shape[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": None
            if partitions is None
            else f"{type(partitions).__name__}:{partitions.get_cron_schedule()}",
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "owners": list(node.owners),
        }
    return shape


def test_graph_matches_snapshot(defs):
    shape = graph_shape(defs)
    if os.environ.get("STOCKPRED_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    if not torch_available():  # `make install TORCH=none`: the code location leaves the MLP out (test below)
        expected = {k: {**v, "deps": [d for d in v["deps"] if d != "mlp_model"]} for k, v in expected.items()}
        expected.pop("mlp_model")
    assert shape == expected, "graph changed: rerun with STOCKPRED_UPDATE_SNAPSHOTS=1 and review"


def test_every_group_job_schedule_and_sensor_resolves(defs):
    groups = {node.group_name for node in defs.resolve_asset_graph().asset_nodes}
    assert groups == {
        "ingestion",
        "validation",
        "features",
        "training",
        "evaluation",
        "serving",
        "monitoring",
        "insights",
        "intraday",
    }
    for job in ("daily_data_job", "weekly_training_job", "serving_job"):
        assert defs.resolve_job_def(job).name == job
    assert defs.resolve_schedule_def("daily_data_schedule").job_name == "daily_data_job"
    assert defs.resolve_schedule_def("weekly_training_schedule").job_name == "weekly_training_job"
    assert defs.resolve_sensor_def("champion_change_sensor").job_name == "serving_job"
    assert defs.resolve_sensor_def("drift_retrain_sensor").job_name == "weekly_training_job"
    for name in ("run_failure_alert_sensor", "automation_condition_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    defs.resolve_all_job_defs()


def test_daily_schedule_requests_sessions_and_skips_holidays():
    session = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 7, 5, 18, 30, tzinfo=NY))
    request = daily_data_schedule(session)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2024-07-05"
    holiday = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 7, 4, 18, 30, tzinfo=NY))
    assert isinstance(daily_data_schedule(holiday), dg.SkipReason)


def test_champion_sensor_fires_once_per_new_champion(tmp_path):
    tracking = MLflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        registered_model="sensor-test",
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    context = dg.build_sensor_context(resources={"mlflow_resource": tracking})
    assert isinstance(champion_change_sensor(context), dg.SkipReason)  # nothing registered yet

    data = lgb.Dataset(np.random.default_rng(0).normal(size=(200, 3)), np.random.default_rng(1).normal(size=200))
    booster = lgb.train({"verbosity": -1, "num_threads": 1}, data, 5)
    with tracking.start_run("sensor-test", {}):
        mlflow.lightgbm.log_model(booster, name="model", registered_model_name="sensor-test")
    tracking.client().set_registered_model_alias("sensor-test", CHAMPION_ALIAS, "1")

    request = champion_change_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == "champion-v1"
    assert context.cursor == "1"
    assert isinstance(champion_change_sensor(context), dg.SkipReason)


def test_prod_definitions_read_endpoints_from_the_environment_at_run_time(monkeypatch):
    monkeypatch.setenv("STOCKPRED_ENV", "prod")
    monkeypatch.setenv("STOCKPRED_LAKE_URL", "s3://stockpred-lake/lake")
    monkeypatch.setenv("STOCKPRED_MLFLOW_TRACKING_URI", "http://mlflow:5000")
    defs = build_definitions()
    lake = defs.resources["lake"]
    assert isinstance(lake.url, dg.EnvVar) and lake.url.env_var_name == "STOCKPRED_LAKE_URL"
    assert defs.resources["mlflow_resource"].tracking_uri.env_var_name == "STOCKPRED_MLFLOW_TRACKING_URI"
    defs.resolve_all_job_defs()


def test_without_pytorch_the_mlp_is_left_out_and_everything_else_resolves():
    """`make install TORCH=none`: no mlp_model in the graph, the weekly job resolves, a warning says why."""
    script = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):  # as in a venv without PyTorch
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTorch())
import dagster as dg
from stockpred_assets.definitions import build_definitions
defs = build_definitions()
graph = defs.resolve_asset_graph()
keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
assert "mlp_model" not in keys and "lgbm_model" in keys, keys
parents = {k.to_user_string() for k in graph.get(dg.AssetKey("challenger_model")).parent_keys}
assert parents == {"lgbm_model", "linear_model", "momentum_model"}, parents
defs.resolve_job_def("weekly_training_job")
print("ok")
"""
    env = {**os.environ, "STOCKPRED_ENV": "local"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
    assert "mlp_model is left out of the code location: the torch_mlp and gru families need PyTorch" in done.stderr
