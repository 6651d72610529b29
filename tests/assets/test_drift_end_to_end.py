"""Drift end to end: a champion trained on two years of the simulated market, then a year of daily drift reports on
the stationary market (no alert) and on the same market with its bear regime switched on (alerts, and the sensor
requests a retraining run). Everything runs through the real assets: ingestion, validation, features, the weekly
training assets, the champion's daily predictions, drift_report with its checks, and drift_retrain_sensor."""

import shutil

import dagster as dg
import pandas as pd
import pytest
from support.env import environment, local_env
from test_drift_metrics import gateway_samples

from stockpred_assets.definitions import build_definitions
from stockpred_assets.monitoring.automation import drift_retrain_sensor
from stockpred_core.data import calendar
from stockpred_core.features.catalog import FEATURE_COLUMNS
from stockpred_core.io.lake import Lake
from stockpred_resources.monitoring import MonitoringResource
from stockpred_resources.tracking import MLflowResource

pytestmark = pytest.mark.slow

SEED, UNIVERSE = "2", "20"
WEEK = "2024-01-08"  # the champion's week: trained on the 104 weeks before that Monday
HISTORY = ("2021-05-24", "2024-02-29")  # the features' warm-up, the two training years, two more months
REGIME_START = "2024-03-01"
LATER = (REGIME_START, "2024-12-31")
MONITORED = (WEEK, "2024-12-31")  # a year of sessions after the champion's cut-off
DATA = [dg.AssetKey(k) for k in ("raw_bars_simulated", "validated_bars", "features")]
CHAMPION = [dg.AssetKey(k) for k in ("linear_model", "challenger_model", "champion_model")]


def span(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The shared past: bars and features through February 2024 and a champion for the week of 2024-01-08."""
    root = tmp_path_factory.mktemp("drift")
    env = local_env(root / "history", STOCKPRED_UNIVERSE_SIZE=UNIVERSE, STOCKPRED_SEED=SEED)
    with environment(env):
        defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
        daily = defs.resolve_job_def("daily_data_job")
        assert daily.execute_in_process(instance=instance, asset_selection=DATA, tags=span(*HISTORY)).success
        weekly = defs.resolve_job_def("weekly_training_job")
        trained = weekly.execute_in_process(instance=instance, partition_key=WEEK, asset_selection=CHAMPION)
        assert trained.success  # the linear model passed the promotion gate and is the champion
    return root


def monitor(root, name: str, pushgateway_url: str, regime_start: str | None = None) -> dict:
    """The year after the champion's cut-off on a copy of the shared past: ingest the later sessions (with the bear
    regime when `regime_start` is set), score them with the champion, report drift over the year (its newest day's
    figures pushed to a real Pushgateway), tick the sensor."""
    data = root / name
    shutil.copytree(root / "history" / "lake", data / "lake")
    env = local_env(
        data,
        STOCKPRED_UNIVERSE_SIZE=UNIVERSE,
        STOCKPRED_SEED=SEED,
        STOCKPRED_MLFLOW_TRACKING_URI=f"sqlite:///{root / 'history' / 'mlflow.db'}",
        STOCKPRED_MLFLOW_ARTIFACTS=(root / "history" / "mlartifacts").as_uri(),
        STOCKPRED_PUSHGATEWAY_URL=pushgateway_url,
        STOCKPRED_DRIFT_ALERT_MAX_AGE_DAYS="none",  # the simulated year is past: report it as if it were now
        **({"STOCKPRED_SIM_REGIME_START": regime_start} if regime_start else {}),
    )
    with environment(env):
        defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
        daily = defs.resolve_job_def("daily_data_job")
        assert daily.execute_in_process(instance=instance, asset_selection=DATA, tags=span(*LATER)).success
        scored = daily.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("predictions")], tags=span(*MONITORED)
        )
        assert scored.success
        report = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("drift_report")], tags=span(*MONITORED)
        )
        assert report.success
        pushed = gateway_samples(pushgateway_url, "stockpred-drift")
        # the sensor reads what the daemon would: the instance's drift_report materializations
        resources = {"monitoring": MonitoringResource(drift_alert_max_age_days=None)}  # the simulated year is past
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=resources)
        tick = drift_retrain_sensor.evaluate_tick(context)
    lake = Lake(str(data / "lake"))
    summary = lake.read_range("monitoring", "drift_summary", *MONITORED)
    materialized = report.asset_materializations_for_node("drift_report")[-1]
    return {
        "summary": summary.set_index("date"),
        "features": lake.read_range("monitoring", "drift_features", *MONITORED),
        "metadata": {k: v.value for k, v in materialized.metadata.items()},
        "checks": {e.asset_check_key.name: e for e in report.get_asset_check_evaluations()},
        "tick": tick,
        "pushed": pushed,
        "lake": lake,
        "root": root,
        "env": env,
    }


@pytest.fixture(scope="module")
def stationary(history, pushgateway_url):
    return monitor(history, "stationary", pushgateway_url)


@pytest.fixture(scope="module")
def bear(history, pushgateway_url):
    return monitor(history, "bear", pushgateway_url, REGIME_START)


def test_a_stationary_year_raises_no_alert(stationary):
    summary = stationary["summary"]
    sessions = calendar.sessions(*MONITORED)
    assert set(summary.index) == set(pd.bdate_range(*MONITORED))  # one row a weekday, holidays included
    assert (summary.loc[~summary.index.isin(sessions), "status"] == "no_session").all()
    reported = summary.loc[sessions]
    assert len(reported) >= 245 and (reported["status"] != "alert").all()
    assert reported["drift_share"].max() < 0.3 and (reported["champion_version"] == "1").all()
    assert (reported["fresh"] == "ok").all() and (reported["sessions_behind"] == 0).all()
    # the champion's live predictions are read: realized IC against its test figures once 20 dates are labelled
    assert reported["decay_status"].iloc[-100:].isin(["ok", "warn"]).all() and reported["ic_dates"].max() == 60
    assert reported["prediction_psi"].notna().all()

    checks = stationary["checks"]
    assert checks["feature_drift"].passed or checks["feature_drift"].severity == dg.AssetCheckSeverity.WARN
    assert checks["data_freshness"].passed
    tick = stationary["tick"]
    assert not tick.run_requests and tick.skip_message.startswith("no drift alert in")


def test_the_report_shows_a_table_a_plot_and_its_reference(stationary):
    meta = stationary["metadata"]
    assert meta["status_date"] == "2024-12-31" and meta["alert_dates"] == [] and meta["last_alert_date"] == "-"
    assert {"drift_share", "max_psi", "prediction_psi", "live_rank_ic", "baseline_rank_ic", "coverage"} <= set(meta)
    assert meta["plot"].startswith("![plot](data:image/png;base64,")
    rows = meta["per_feature"].records
    assert {r.data["feature"] for r in rows} == set(FEATURE_COLUMNS)
    assert all(r.data["status"] in ("ok", "warn", "alert") for r in rows)
    per_day = stationary["features"]
    assert per_day.groupby("date").size().eq(len(FEATURE_COLUMNS)).all()
    # the reference: the champion's training window as its MLflow run recorded it, fitted once and cached
    reference = stationary["lake"].read_table("monitoring", "reference_v1")
    tracking = MLflowResource(tracking_uri=f"sqlite:///{stationary['root'] / 'history' / 'mlflow.db'}")
    params = tracking.client().get_run(tracking.client().get_model_version("stockpred", "1").run_id).data.params
    assert reference["start"].iloc[0] == pd.Timestamp(params["train"].split("..")[0])
    assert reference["end"].iloc[0] == pd.Timestamp(params["test"].split("..")[1]) < pd.Timestamp(WEEK)
    assert set(reference["feature"]) == {*FEATURE_COLUMNS, "prediction"}


def test_the_bear_regime_raises_the_alert_and_the_sensor_requests_retraining(bear, stationary):
    summary = bear["summary"]
    alerts = summary.index[summary["status"] == "alert"]
    assert len(alerts) >= 10 and alerts.min() > pd.Timestamp(REGIME_START)
    assert (summary.loc[alerts, "drift_share"] >= 0.3).all()
    # the same sessions before the regime read the same in both worlds
    before = summary.index < pd.Timestamp(REGIME_START)
    pd.testing.assert_series_equal(summary.loc[before, "drift_share"], stationary["summary"].loc[before, "drift_share"])

    check = bear["checks"]["feature_drift"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    last = f"{alerts.max():%Y-%m-%d}"
    assert bear["metadata"]["last_alert_date"] == last and last in bear["metadata"]["alert_dates"]

    [request] = bear["tick"].run_requests
    monday = alerts.max() - pd.Timedelta(days=alerts.max().weekday())
    assert request.partition_key == f"{monday:%Y-%m-%d}"
    assert request.run_key == f"drift-{last}-{monday:%Y-%m-%d}"
    assert request.tags["stockpred/trigger"] == "drift"


def test_the_newest_days_figures_reach_the_pushgateway(stationary, bear):
    """What the PrometheusRule's drift and model alerts read, as the gateway serves it."""
    for world in (stationary, bear):
        pushed = world["pushed"]
        assert world["metadata"]["metrics_push"].startswith(f"{len(pushed)} series pushed to http://127.0.0.1:")
        features = world["features"]
        newest = features[features["date"] == pd.Timestamp("2024-12-31")].dropna(subset=["psi"]).set_index("feature")
        psi = {labels[0][1]: v for (name, labels), v in pushed.items() if name == "stockpred_feature_psi"}
        drifting = {labels[0][1]: v for (name, labels), v in pushed.items() if name == "stockpred_feature_drifting"}
        assert psi == pytest.approx(newest["psi"].to_dict())
        assert drifting == newest["drifting"].astype(float).to_dict()
        day = world["summary"].loc["2024-12-31"]
        assert pushed[("stockpred_drift_alert", ())] == float(day["status"] == "alert")
        assert pushed[("stockpred_drift_share", ())] == pytest.approx(day["drift_share"])
        model = (("model", "linear"), ("version", "1"))
        assert pushed[("stockpred_model_rank_ic", model)] == pytest.approx(day["live_rank_ic"])
        assert ("stockpred_model_error_ratio", model) in pushed
    assert stationary["pushed"][("stockpred_drift_alert", ())] == 0.0


def test_a_daily_report_reads_only_new_features_and_equals_the_report_computed_from_them(stationary):
    """The window's per-session bin counts are kept (monitoring/drift_counts): a report of the last day reads no
    features again, and after that day's features are rewritten it reads that day only; the figures are the ones the
    year's report computed from the features themselves."""
    day = MONITORED[1]
    expected = stationary["features"]
    expected = expected[expected["date"] == pd.Timestamp(day)].set_index("feature")[["psi", "ks"]]
    with environment(stationary["env"]):
        defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
        job = defs.resolve_implicit_global_asset_job_def()
        reads = []
        for rewrite in (False, True):
            if rewrite:
                assert job.execute_in_process(
                    instance=instance, asset_selection=[dg.AssetKey("features")], partition_key=day
                ).success
            report = job.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey("drift_report")], partition_key=day
            )
            assert report.success
            meta = report.asset_materializations_for_node("drift_report")[-1].metadata
            reads.append(meta["feature_sessions_read"].value)
            got = stationary["lake"].read_range("monitoring", "drift_features", day, day).set_index("feature")
            pd.testing.assert_frame_equal(got.loc[expected.index, ["psi", "ks"]], expected, rtol=1e-12)
    assert reads == [0, 1]
