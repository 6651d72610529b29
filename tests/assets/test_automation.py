"""Schedules, sensors and automation conditions, evaluated on real Dagster instances (ticks through evaluate_tick)."""

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
from support.env import local_env

from stockpred_assets.definitions import build_definitions
from stockpred_assets.ingestion.automation import daily_data_schedule
from stockpred_assets.monitoring.automation import drift_retrain_sensor, run_failure_alert_sensor
from stockpred_assets.serving.automation import champion_change_sensor
from stockpred_core.data import calendar
from stockpred_core.settings import load_settings
from stockpred_resources.environments import build_resources
from stockpred_resources.monitoring import MonitoringResource

NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in local_env(tmp_path_factory.mktemp("automation")).items():
            mp.setenv(key, value)
        return build_definitions()


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def at(day: str, time: str = "18:30") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=NY)


# --- schedules -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2025-07-03", "2025-07-03"),  # the session before Independence Day
        ("2025-07-04", None),  # Independence Day, a Friday: the calendar closes the exchange
        ("2025-12-24", "2025-12-24"),  # a half day is a session
        ("2025-12-25", None),  # Christmas
        ("2025-04-18", None),  # Good Friday: an exchange holiday but no federal one
        ("2025-11-28", "2025-11-28"),  # the half day after Thanksgiving
    ],
)
def test_daily_schedule_runs_after_the_close_of_sessions_only(defs, instance, day, expected):
    schedule = defs.resolve_schedule_def("daily_data_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 18 * * 1-5", "America/New_York")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at(day), repository_def=defs.get_repository_def()
    )
    tick = daily_data_schedule.evaluate_tick(context)
    if expected is None:
        assert not tick.run_requests and tick.skip_message == f"{day} is not an NYSE session"
    else:
        [request] = tick.run_requests
        assert request.partition_key == expected and request.run_key == expected
        assert request.tags["dagster/schedule_name"] == "daily_data_schedule"


def test_weekly_schedule_trains_the_week_starting_that_monday(defs, instance):
    schedule = defs.resolve_schedule_def("weekly_training_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * 1", "America/New_York")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at("2025-07-07", "06:00"), repository_def=defs.get_repository_def()
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2025-07-07" and schedule.job_name == "weekly_training_job"


# --- declarative automation ----------------------------------------------------------------------------------------


def _materialized(instance, asset: str, days) -> None:
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=f"{day:%Y-%m-%d}"))


def test_drift_report_follows_the_days_features(defs, instance):
    sensor = defs.resolve_sensor_def("automation_condition_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    day = pd.Timestamp("2025-03-12")
    # what the daily schedule leaves behind: sessions only (New Year's Day, MLK and Presidents Day never run)
    history = calendar.sessions(day - pd.Timedelta(days=140), day - pd.Timedelta(days=1))
    _materialized(instance, "validated_bars", [*history, day])
    _materialized(instance, "features", history)
    selection = dg.AssetSelection.assets("drift_report")
    now = at("2025-03-12", "19:00")
    first = dg.evaluate_automation_conditions(defs, instance, selection, evaluation_time=now)
    assert first.total_requested == 0  # the day's features are not there yet

    _materialized(instance, "features", [day])
    second = dg.evaluate_automation_conditions(defs, instance, selection, evaluation_time=now, cursor=first.cursor)
    assert second.get_requested_partitions(dg.AssetKey("drift_report")) == {"2025-03-12"}
    third = dg.evaluate_automation_conditions(defs, instance, selection, evaluation_time=now, cursor=second.cursor)
    assert third.total_requested == 0  # requested once per update


# --- drift -> retraining -------------------------------------------------------------------------------------------


def _report(instance, day: str, alerts: list[str]) -> None:
    """What drift_report records: the run's alert days in the materialization metadata."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "drift_report",
            partition=day,
            metadata={"drift_status": "alert" if day in alerts else "ok", "alert_dates": dg.MetadataValue.json(alerts)},
        )
    )


def _tick(defs, instance, cursor=None, **monitoring):
    resources = {"monitoring": MonitoringResource(drift_alert_max_age_days=None, **monitoring)}
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources)
    return drift_retrain_sensor.evaluate_tick(context)


def _launched(defs, instance, request: dg.RunRequest) -> dg.DagsterRun:
    """The run the daemon creates for a sensor's request: the job, the request's tags and its run key."""
    tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "drift_retrain_sensor"}
    return instance.create_run_for_job(defs.resolve_job_def("weekly_training_job"), tags=tags)


def test_drift_alert_requests_one_retraining_run_for_its_week(defs, instance):
    assert _tick(defs, instance).skip_message == "no drift alert in 0 new drift report(s)"
    _report(instance, "2025-03-11", [])
    quiet = _tick(defs, instance)
    assert not quiet.run_requests and quiet.skip_message == "no drift alert in 1 new drift report(s)"

    _report(instance, "2025-03-12", ["2025-03-12"])
    tick = _tick(defs, instance, cursor=quiet.cursor)
    [request] = tick.run_requests
    assert request.run_key == "drift-2025-03-12-2025-03-10" and request.partition_key == "2025-03-10"
    assert request.tags["stockpred/trigger"] == "drift" and request.tags["stockpred/drift_alert_date"] == "2025-03-12"
    assert request.job_name in (None, "weekly_training_job")
    # the cursor moved past the report: the next tick has nothing new
    assert _tick(defs, instance, cursor=tick.cursor).skip_message == "no drift alert in 0 new drift report(s)"


def test_the_same_alert_is_never_requested_twice(defs, instance):
    _report(instance, "2025-03-12", ["2025-03-12"])
    first = _tick(defs, instance, drift_retrain_cooldown_days=0)
    [request] = first.run_requests
    run = _launched(defs, instance, request)
    # the day's report is materialized again (a retry, a backfill over it): same alert, same run key
    _report(instance, "2025-03-12", ["2025-03-12"])
    again = _tick(defs, instance, cursor=first.cursor, drift_retrain_cooldown_days=0)
    assert not again.run_requests
    assert again.skip_message == f"drift-2025-03-12-2025-03-10 was already requested: run {run.run_id}"


def test_cool_down_between_drift_retrainings(defs, instance):
    _report(instance, "2025-03-12", ["2025-03-12"])
    first = _tick(defs, instance)
    run = _launched(defs, instance, first.run_requests[0])
    _report(instance, "2025-03-19", ["2025-03-18", "2025-03-19"])  # a later alert, within the week's cool-down
    cooled = _tick(defs, instance, cursor=first.cursor)
    assert not cooled.run_requests and "cool-down" in cooled.skip_message and run.run_id in cooled.skip_message
    # once the cool-down is over (here: none), the next alert retrains its own week
    _report(instance, "2025-03-20", ["2025-03-20"])
    [request] = _tick(defs, instance, cursor=cooled.cursor, drift_retrain_cooldown_days=0).run_requests
    assert request.run_key == "drift-2025-03-20-2025-03-17" and request.partition_key == "2025-03-17"


def test_alerts_from_a_backfill_of_old_reports_do_not_retrain(defs, instance):
    _report(instance, "2024-06-03", ["2024-06-03"])
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"monitoring": MonitoringResource(drift_alert_max_age_days=7)}
    )
    tick = drift_retrain_sensor.evaluate_tick(context)
    assert not tick.run_requests and "over 7 days old" in tick.skip_message


# --- champion changed -> serving refreshed -------------------------------------------------------------------------


def test_champion_change_refreshes_online_features_and_the_bento(defs):
    sensor = defs.resolve_sensor_def("champion_change_sensor")
    assert sensor is not None and champion_change_sensor.job_name == "serving_job"
    job = defs.resolve_job_def(sensor.job_name)
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert "online_features" in selected
    if dg.AssetKey("bento") in defs.resolve_asset_graph().get_all_asset_keys():
        assert "bento" in selected
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_every_daily_run_refreshes_online_features_whatever_the_champion(defs):
    daily = defs.resolve_job_def("daily_data_job")
    selected = {key.to_user_string() for key in daily.asset_layer.selected_asset_keys}
    assert {"features", "online_features"} <= selected  # the day's vectors, not the last promotion's
    assert "bento" not in selected  # rebuilt only when the champion changes
    assert daily.partitions_def is not None  # the schedule still requests one day's partition


# --- run failure -> webhook ----------------------------------------------------------------------------------------


class Webhook(BaseHTTPRequestHandler):
    """Records each POSTed JSON body on its server (`received`) and answers with the server's `status`."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dg.op
def ingest_step():
    raise RuntimeError("provider answered 503 three times")


@dg.job(tags={"stockpred/trigger": "test"})
def failing_job():
    ingest_step()


def _failure_ticks(instance, monitoring: MonitoringResource):
    """Tick once (the sensor starts watching), fail a run, tick again."""
    first = run_failure_alert_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources={"monitoring": monitoring})
    )
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    second = run_failure_alert_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"monitoring": monitoring})
    )
    return result.run_id, second


def test_failed_run_is_posted_to_the_webhook_and_logged(instance, webhook, caplog):
    url = f"http://127.0.0.1:{webhook.server_port}/hooks/stockpred"
    monitoring = MonitoringResource(webhook_url=url, dagster_ui_url="http://dagster.example:3000")
    with caplog.at_level(logging.ERROR, logger="stockpred.alerts"):
        run_id, tick = _failure_ticks(instance, monitoring)
    [reaction] = tick.dagster_run_reactions
    assert reaction.dagster_run.run_id == run_id and reaction.error is None
    [(content_type, payload)] = webhook.received
    assert content_type == "application/json"
    assert payload["event"] == "run_failure" and payload["job"] == "failing_job" and payload["run_id"] == run_id
    assert payload["failed_steps"] == ["ingest_step"] and payload["tags"] == {"stockpred/trigger": "test"}
    assert payload["url"] == f"http://dagster.example:3000/runs/{run_id}"
    assert "failing_job" in payload["text"] and "ingest_step" in payload["text"]
    assert any(run_id in r.getMessage() for r in caplog.records)  # logged too


def test_a_refused_alert_fails_the_tick_and_is_still_logged(instance, webhook, caplog):
    webhook.status = 500
    monitoring = MonitoringResource(webhook_url=f"http://127.0.0.1:{webhook.server_port}/", attempts=2)
    with caplog.at_level(logging.ERROR, logger="stockpred.alerts"):
        run_id, tick = _failure_ticks(instance, monitoring)
    [reaction] = tick.dagster_run_reactions
    assert reaction.error is not None and "HTTP 500" in reaction.error.to_string()
    assert len(webhook.received) == 2  # a 5xx is retried once
    assert any(run_id in r.getMessage() for r in caplog.records)


def test_without_a_webhook_the_failure_is_logged(instance, caplog):
    with caplog.at_level(logging.ERROR, logger="stockpred.alerts"):
        run_id, tick = _failure_ticks(instance, MonitoringResource())
    assert tick.dagster_run_reactions[0].error is None
    assert any(run_id in r.getMessage() and "ALERT" in r.getMessage() for r in caplog.records)


def test_monitoring_settings_reach_the_resources(tmp_path):
    env = local_env(
        tmp_path,
        STOCKPRED_ALERT_WEBHOOK_URL="https://hooks.example/T0/B0/xyz",
        STOCKPRED_DRIFT_RETRAIN_COOLDOWN_DAYS="3.5",
        STOCKPRED_DAGSTER_UI_URL="https://dagster.example",
        STOCKPRED_SIM_REGIME_START="2024-03-01",
    )
    resources = build_resources(load_settings(env))
    monitoring = resources["monitoring"]
    assert monitoring.webhook_url == "https://hooks.example/T0/B0/xyz"
    assert (
        monitoring.drift_retrain_cooldown_days == 3.5 and monitoring.run_url("r1") == "https://dagster.example/runs/r1"
    )
    assert resources["simulated_provider"].regime_start == "2024-03-01"
    defaults = build_resources(load_settings(local_env(tmp_path)))
    assert defaults["monitoring"].webhook_url is None and defaults["simulated_provider"].regime_start is None
    prod = build_resources(
        load_settings(
            {
                **env,
                "STOCKPRED_ENV": "prod",
                "STOCKPRED_LAKE_URL": "s3://lake",
                "STOCKPRED_MLFLOW_TRACKING_URI": "http://mlflow:5000",
            }
        )
    )
    url = prod["monitoring"].webhook_url  # a token in the URL: read from the environment at run time
    assert isinstance(url, dg.EnvVar) and url.env_var_name == "STOCKPRED_ALERT_WEBHOOK_URL"
