"""The evaluation assets on a synthetic lake and MLflow registry: `predictions` scores each day with the model in
force and never with one that could have seen the day, its out-of-sample check catches one that did, and
`backtest_history` reports every prediction in the lake."""

import logging
import re
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest

from stockpred_assets.evaluation.assets import backtest_history, predictions
from stockpred_assets.evaluation.checks import predictions_out_of_sample
from stockpred_assets.evaluation.reporting import HEADLINE
from stockpred_assets.evaluation.scoring import week_monday
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION
from stockpred_core.io.lake import Lake
from stockpred_core.io.model_card import CHAMPION_FROM_TAG, FAMILY_TAG, PARTITION_TAG
from stockpred_core.io.model_registry import log_forecaster
from stockpred_core.models.baselines import MomentumForecaster
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.tracking import MLflowResource

pytestmark = pytest.mark.slow  # about 15 s: an MLflow store and four registered versions

W0, W1, W2, W3 = (pd.Timestamp(d) for d in ("2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"))
DAYS = pd.bdate_range(W0, "2024-03-22")  # three weeks, no exchange holiday
TICKERS = [f"T{i:02d}" for i in range(10)]
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def _features(rng: np.random.Generator) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([DAYS, TICKERS], names=["date", "ticker"])
    frame = pd.DataFrame(rng.normal(size=(len(index), len(FEATURE_COLUMNS))), index=index, columns=FEATURE_COLUMNS)
    frame = frame.reset_index()
    frame.loc[frame["ticker"] == "T09", "ret_20"] = np.nan  # still warming up: not scored
    frame["feature_set_version"] = FEATURE_SET_VERSION
    return frame


def _bars(rng: np.random.Generator) -> pd.DataFrame:
    sessions = pd.bdate_range("2024-02-26", "2024-03-29")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(len(sessions), len(TICKERS))), axis=0))
    wide = pd.DataFrame(close, index=pd.DatetimeIndex(sessions, name="date"), columns=TICKERS)
    bars = wide.stack().rename("close").rename_axis(["date", "ticker"]).reset_index()
    bars["open"] = bars["high"] = bars["low"] = bars["close"]
    bars["volume"] = 1e6
    return bars


def _register(tracking: MLflowResource, scale: float, week: pd.Timestamp, champion_from: pd.Timestamp | None) -> str:
    """A momentum model predicting `scale` x ret_20, registered as trained for `week` (its cut-off)."""
    rng = np.random.default_rng(int(scale))
    X = pd.DataFrame(rng.normal(size=(50, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    model = MomentumForecaster(column="ret_20", scale=scale).fit(X, pd.Series(rng.normal(size=50)))
    with tracking.start_run(f"momentum-{week:%Y-%m-%d}", {}):
        mlflow.log_params(
            {"horizon": 1, "label": "return", "cutoff": f"{week:%Y-%m-%d}", "feature_set_version": FEATURE_SET_VERSION}
        )
        info = log_forecaster(model, tracking.registered_model, X.head(3))
    version = str(info.registered_model_version)
    client = tracking.client()
    client.set_model_version_tag(tracking.registered_model, version, PARTITION_TAG, f"{week:%Y-%m-%d}")
    client.set_model_version_tag(tracking.registered_model, version, FAMILY_TAG, "momentum")
    if champion_from is not None:
        client.set_model_version_tag(tracking.registered_model, version, CHAMPION_FROM_TAG, f"{champion_from:%Y-%m-%d}")
    return version


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    rng = np.random.default_rng(0)
    lake = LakeResource(url=str(root / "lake"))
    lake.write_partitions("features", "features", _features(rng), DAYS)
    bars = _bars(rng)
    lake.write_partitions("validated", "bars", bars, sorted(bars["date"].unique()))
    tracking = MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        registered_model="evaluation-test",
    )
    versions = {
        "W1": _register(tracking, 1.0, W1, W1),
        "W2": _register(tracking, 2.0, W2, W2),
        "W2 not promoted": _register(tracking, 3.0, W2, None),
        "W3": _register(tracking, 4.0, W3, W3),  # promoted from W3: must not score W2
    }
    resources = {
        "lake": lake,
        "duckdb": DuckDBResource(database=str(root / "catalog.duckdb")),
        "mlflow_resource": tracking,
        "market_data": MarketDataResource(),
    }
    return {"root": root, "lake": lake, "tracking": tracking, "versions": versions, "resources": resources}


def _run(setup, start: str, end: str, assets=(predictions,), checks=(predictions_out_of_sample,), **kwargs):
    return dg.materialize(
        [*assets, *checks],
        resources=setup["resources"],
        tags={RANGE[0]: start, RANGE[1]: end},
        raise_on_error=False,
        **kwargs,
    )


def test_predictions_never_score_a_day_the_model_could_have_seen(setup):
    result = _run(setup, "2024-03-04", "2024-03-22")
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("predictions")[0].metadata.items()}
    assert meta["days_skipped"] == 5 and set(meta["skipped"]) == {f"{d:%Y-%m-%d}" for d in DAYS[:5]}
    table = Lake(setup["lake"].url).read_range("evaluation", "predictions", DAYS[0], DAYS[-1])
    features = Lake(setup["lake"].url).read_range("features", "features", DAYS[0], DAYS[-1])
    assert set(Lake(setup["lake"].url).partition_dates("evaluation", "predictions")) == set(DAYS)  # W0: empty
    assert table["date"].min() == W1 and len(table) == 10 * 9 and meta["unscored_rows"] == 10  # T09 warms up
    assert list(table.columns) == ["date", "ticker", "prediction", "model_version", "model_family", "horizon", "label"]
    versions = setup["versions"]
    in_w1 = table["date"] < W2
    assert set(table.loc[in_w1, "model_version"]) == {versions["W1"]}
    assert set(table.loc[~in_w1, "model_version"]) == {versions["W2"]}  # not the unpromoted one, nor W3's
    # the rows really are the scores of those models: prediction = scale x ret_20 of that day's features
    joined = table.merge(features[["date", "ticker", "ret_20"]], on=["date", "ticker"])
    scale = np.where(joined["date"] < W2, 1.0, 2.0)
    np.testing.assert_allclose(joined["prediction"], scale * joined["ret_20"], rtol=1e-12)
    # every scoring model was trained on data before the day it scored, and promoted for that week or before
    client = setup["tracking"].client()
    tags = {v: client.get_model_version("evaluation-test", v).tags for v in table["model_version"].unique()}
    cutoff = pd.to_datetime(table["model_version"].map(lambda v: tags[v][PARTITION_TAG]))
    since = pd.to_datetime(table["model_version"].map(lambda v: tags[v][CHAMPION_FROM_TAG]))
    assert (cutoff <= table["date"]).all() and (since <= table["date"].map(week_monday)).all()
    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["rows_not_out_of_sample"].value == 0


def test_a_range_before_any_promotion_fails_with_the_reason(setup):
    result = _run(setup, "2024-03-04", "2024-03-08")
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "no champion was in force on 2024-03-04..2024-03-08: the first was promoted for the week of 2024-03-11" in (
        error
    )


def test_without_any_champion_the_days_are_recorded_as_not_scored_and_the_check_runs(setup, caplog):
    """A fresh deployment's first daily run: no warning, the check has a result, the history says it waits."""
    empty = MLflowResource(tracking_uri=setup["tracking"].tracking_uri, registered_model="nothing-registered")
    resources = {**setup["resources"], "mlflow_resource": empty, "lake": LakeResource(url=str(setup["root"] / "fresh"))}
    result = dg.materialize(
        [predictions, predictions_out_of_sample, backtest_history],
        resources=resources,
        tags={RANGE[0]: "2024-03-11", RANGE[1]: "2024-03-15"},
    )
    assert result.success
    noise = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noise, noise
    meta = {k: v.value for k, v in result.asset_materializations_for_node("predictions")[0].metadata.items()}
    assert meta["dagster/row_count"] == 0 and meta["days_scored"] == 0 and meta["days_skipped"] == 5
    assert "nothing-registered has no champion yet" in meta["note"]
    assert Lake(resources["lake"].url).partition_dates("evaluation", "predictions") == list(DAYS[5:10])
    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["rows"].value == 0
    assert result.asset_materializations_for_node("backtest_history") == []  # fewer than min_dates: waits


def test_the_check_catches_a_prediction_made_by_a_model_from_the_future(setup):
    lake = setup["lake"]
    day = pd.Timestamp("2024-03-12")
    leaked = lake.read_range("evaluation", "predictions", day, day)
    leaked["model_version"] = setup["versions"]["W2"]  # trained up to 2024-03-18: it saw 2024-03-12
    lake.write_partitions("evaluation", "predictions", leaked, [day])
    job = dg.define_asset_job("check_only", selection=dg.AssetSelection.checks(predictions_out_of_sample))
    defs = dg.Definitions(
        assets=[predictions], asset_checks=[predictions_out_of_sample], jobs=[job], resources=setup["resources"]
    )
    # a range of one day: Dagster cannot infer the partitions of a job that selects checks only from partition_key
    result = defs.resolve_job_def("check_only").execute_in_process(
        tags={RANGE[0]: "2024-03-12", RANGE[1]: "2024-03-12"}, raise_on_error=False
    )
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.metadata["first_offending_date"].value == "2024-03-12"


def test_history_reports_every_prediction_in_the_lake(setup):
    assert _run(setup, "2024-03-04", "2024-03-22").success  # rewrites what the previous test spoiled
    result = dg.materialize([backtest_history], resources=setup["resources"])
    meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_history")[0].metadata.items()}
    assert set(HEADLINE) <= set(meta) and "excess_return_index" not in meta  # no index file configured
    assert meta["oos_range"] == "2024-03-11..2024-03-22" and meta["oos_predictions"] == 90
    assert {"plot_cumulative_return", "plot_ic", "plot_drawdown", "summary", "per_year", "signal_per_year"} <= set(meta)
    # short Markdown (drawn inline by the UI) whose image is the run's artifact, served by the MLflow UI
    image = re.fullmatch(r"!\[ic: served by the MLflow UI at (\S+) \(make dev starts it\)\]\((\S+)\)", meta["plot_ic"])
    assert image and len(meta["plot_ic"]) < 1000
    query = parse_qs(urlsplit(image[2]).query)
    assert image[2].startswith(f"{setup['tracking'].ui_url}/get-artifact?")
    assert query == {"path": ["backtest_history/ic.png"], "run_uuid": [meta["mlflow_run_id"]]}
    strategies = [r.data for r in meta["strategies"].records]
    assert strategies[0]["strategy"] == "top1_drop1"  # 9 tickers scored: k = 9 // 5, one name swapped a day at most
    assert {c.name for c in meta["summary"].schema.columns} >= {"book", "annual_return", "sharpe"}
    page = open(meta["report_html"]).read()
    assert page.startswith("<!DOCTYPE html>") and page.count("<img") == 3
    run = setup["tracking"].client().get_run(meta["mlflow_run_id"])
    assert run.data.tags["kind"] == "backtest_history" and "backtest_history.signal.rank_ic" in run.data.metrics
    artifacts = {a.path for a in setup["tracking"].client().list_artifacts(run.info.run_id, "backtest_history")}
    assert {"backtest_history/report.html", "backtest_history/ic.png"} <= artifacts
