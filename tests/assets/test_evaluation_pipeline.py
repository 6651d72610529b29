"""The evaluation group inside the real graph on simulated data: the daily job records the days as not scored until
a champion exists, `champion_model` tags the week it promotes from, the daily job then scores each day with the
champion of its week, the rolling report follows, and the weekly backtest lands in the week's model run in MLflow."""

import os

import dagster as dg
import pandas as pd
import pytest
from support.env import environment, local_env

from stockpred_assets.definitions import build_definitions
from stockpred_assets.evaluation.reporting import HEADLINE
from stockpred_core.io.lake import Lake
from stockpred_core.io.model_card import CHAMPION_FROM_TAG, PARTITION_TAG
from stockpred_core.settings import load_settings
from stockpred_resources.tracking import MLflowResource

pytestmark = pytest.mark.slow  # about a minute: a year of daily partitions and two weekly trainings

START, END = "2023-01-03", "2024-03-22"
W1, W2 = "2024-03-11", "2024-03-18"
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
TRAIN = {"train_weeks": 30, "horizon": 1, "n_folds": 2}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation-pipeline")
    with environment(local_env(root, STOCKPRED_UNIVERSE_SIZE="10")):
        # The gate is not under test here: promote the week's linear model without it.
        promote = dg.define_asset_job(
            "promote",
            selection=dg.AssetSelection.assets("linear_model", "challenger_model", "champion_model").without_checks(),
        )
        defs = dg.Definitions.merge(build_definitions(), dg.Definitions(jobs=[promote]))
        instance = dg.DagsterInstance.ephemeral()
        daily = defs.resolve_job_def("daily_data_job")
        runs = {"daily": daily.execute_in_process(instance=instance, tags={RANGE[0]: START, RANGE[1]: END})}
        for week in (W1, W2):
            runs[week] = defs.resolve_job_def("promote").execute_in_process(
                instance=instance, partition_key=week, run_config={"ops": {"linear_model": {"config": TRAIN}}}
            )
        runs["scored"] = daily.execute_in_process(
            instance=instance,
            tags={RANGE[0]: "2024-03-04", RANGE[1]: END},
            asset_selection=[dg.AssetKey("predictions"), dg.AssetKey("backtest_history")],
        )
        backtest = {"family": "linear", "horizon": 1, "n_folds": 2, "min_train_sessions": 60, "train_weeks": 30}
        runs["backtest"] = defs.resolve_job_def("weekly_training_job").execute_in_process(
            instance=instance,
            partition_key=W2,
            asset_selection=[dg.AssetKey("backtest_report")],
            run_config={"ops": {"backtest_report": {"config": backtest}}},
        )
        yield {"runs": runs, "settings": load_settings()}


def test_before_any_champion_the_daily_job_records_the_days_as_not_scored(graph):
    daily = graph["runs"]["daily"]
    assert daily.success
    days = len(pd.bdate_range(START, END))
    events = daily.asset_materializations_for_node("predictions")  # one per day of the single-run backfill
    assert len(events) == days and {e.metadata["days_scored"].value for e in events} == {0}
    checks = {e.asset_check_key.name: e for e in daily.get_asset_check_evaluations()}
    assert checks["predictions_out_of_sample"].passed  # the blocking check has a result: nothing to gate
    assert daily.asset_materializations_for_node("backtest_history") == []  # waits for predictions
    assert len(daily.asset_materializations_for_node("features")) == days


def test_each_day_is_scored_by_the_champion_of_its_week_trained_before_it(graph):
    runs, settings = graph["runs"], graph["settings"]
    assert runs[W1].success and runs[W2].success and runs["scored"].success
    tracking = MLflowResource(tracking_uri=settings.mlflow_tracking_uri, registered_model=settings.registered_model)
    client = tracking.client()
    versions = {
        v.tags[CHAMPION_FROM_TAG]: v for v in client.search_model_versions(f"name = '{settings.registered_model}'")
    }
    assert set(versions) == {W1, W2} and all(v.tags[PARTITION_TAG] == week for week, v in versions.items())
    table = Lake(settings.lake_url).read_range("evaluation", "predictions", "2024-03-04", END)
    assert table["date"].min() == pd.Timestamp(W1) and table["ticker"].nunique() == 10
    for week, version in versions.items():
        rows = table[table["model_version"] == str(version.version)]
        days = set(rows["date"])
        assert days == set(pd.bdate_range(week, periods=5))
        params = client.get_run(version.run_id).data.params
        # trained on data before its week: the last test day and the cut-off come before every day it scored
        assert pd.Timestamp(params["test"].split("..")[1]) < min(days) and pd.Timestamp(params["cutoff"]) <= min(days)
    meta = runs["scored"].asset_materializations_for_node("predictions")[0].metadata
    assert meta["days_skipped"].value == 5  # the week before the first champion
    check = runs["scored"].get_asset_check_evaluations()[0]
    assert check.asset_check_key.name == "predictions_out_of_sample" and check.passed


def test_the_history_reports_the_champions_predictions(graph):
    meta = graph["runs"]["scored"].asset_materializations_for_node("backtest_history")[0].metadata
    # the last day has no realized return yet
    assert set(HEADLINE) <= set(meta) and meta["oos_range"].value == f"{W1}..2024-03-21"
    assert os.path.isfile(meta["report_html"].value)


def test_the_weekly_backtest_is_logged_into_the_weeks_model_run(graph):
    run = graph["runs"]["backtest"]
    assert run.success
    meta = {k: v.value for k, v in run.asset_materializations_for_node("backtest_report")[0].metadata.items()}
    assert set(HEADLINE) <= set(meta) and meta["mlflow_logged_into"].startswith("challenger v")
    settings = graph["settings"]
    client = MLflowResource(tracking_uri=settings.mlflow_tracking_uri).client()
    logged = client.get_run(meta["mlflow_run_id"])
    assert logged.data.tags[PARTITION_TAG] == W2 and "test_rank_ic" in logged.data.metrics  # the model's own run
    assert "backtest.signal.rank_ic" in logged.data.metrics and "backtest.top2_drop1.net.sharpe" in logged.data.metrics
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id, "backtest")}
    assert {"backtest/report.html", "backtest/cumulative_return.png", "backtest/drawdown.png"} <= artifacts
