"""Monitoring automation: retrain when the drift report raises an alert, post every failed run to a webhook, and
evaluate the assets' automation conditions (`drift_report` follows the daily chain)."""

import datetime as dt

import dagster as dg
import pandas as pd

from stockpred_resources.monitoring import MonitoringResource

TRIGGER_TAG = "stockpred/trigger"
ALERT_DATE_TAG = "stockpred/drift_alert_date"
RUN_KEY_TAG = "dagster/run_key"  # what the daemon stamps on a sensor's run
PAGE = 500

# `eager()` waits for every upstream partition of the look-back windows, and the daily schedule never materializes a
# holiday's: only the day's own features and bars must exist (an older gap shows in the report's freshness instead).
DAY_DEPS_MISSING = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.missing()
    & dg.AutomationCondition.in_latest_time_window()
    & ~dg.AutomationCondition.will_be_requested()
).with_label("the day's upstream partitions missing")
FOLLOWS_THE_DAY = (
    dg.AutomationCondition.eager()
    .replace("any_deps_missing", DAY_DEPS_MISSING)
    # predictions are read when present and never awaited (there are none before the first champion)
    .ignore(dg.AssetSelection.assets("predictions"))
)

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the assets' automation conditions: drift_report follows each day's features",
)


def _new_alert_dates(context: dg.SensorEvaluationContext) -> tuple[set[str], int, int | None]:
    """Alert days of the drift reports materialized since the cursor: (dates, reports read, newest storage id)."""
    after = int(context.cursor) if context.cursor else None
    dates: set[str] = set()
    read = 0
    while True:
        page = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report"), after_storage_id=after), limit=PAGE,
            ascending=True,
        )  # fmt: skip
        for record in page.records:
            metadata = record.asset_materialization.metadata if record.asset_materialization else {}
            if "alert_dates" in metadata:
                dates.update(metadata["alert_dates"].value or [])
            after, read = record.storage_id, read + 1
        if len(page.records) < PAGE:
            return dates, read, after


def _week_of(day: pd.Timestamp) -> str:
    return f"{day - pd.Timedelta(days=day.weekday()):%Y-%m-%d}"


@dg.sensor(
    job_name="weekly_training_job",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def drift_retrain_sensor(context: dg.SensorEvaluationContext, monitoring: MonitoringResource):
    """When a drift report raises an alert, request `weekly_training_job` for the week of the newest alert day: once
    per alert (run key `drift-<day>-<week>`), and at most once per cool-down across alerts."""
    dates, read, newest = _new_alert_dates(context)
    cursor = str(newest) if newest is not None else context.cursor
    if not dates:
        return dg.SensorResult(skip_reason=f"no drift alert in {read} new drift report(s)", cursor=cursor)
    day = pd.Timestamp(max(dates))
    now = dt.datetime.now(dt.UTC)
    if not monitoring.is_recent(day):
        max_age = monitoring.drift_alert_max_age_days
        return dg.SensorResult(
            skip_reason=f"the newest drift alert ({day:%Y-%m-%d}) is over {max_age:g} days old: a backfill, not news",
            cursor=cursor,
        )
    week = _week_of(day)
    run_key = f"drift-{day:%Y-%m-%d}-{week}"
    done = context.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
    if done:
        return dg.SensorResult(skip_reason=f"{run_key} was already requested: run {done[0].run_id}", cursor=cursor)
    cooldown = dt.timedelta(days=monitoring.drift_retrain_cooldown_days)
    recent = context.instance.get_runs(
        dg.RunsFilter(job_name="weekly_training_job", tags={TRIGGER_TAG: "drift"}, created_after=now - cooldown),
        limit=1,
    )
    if recent:
        return dg.SensorResult(
            skip_reason=f"drift alert of {day:%Y-%m-%d} not acted on: run {recent[0].run_id} retrained for drift "
            f"less than {monitoring.drift_retrain_cooldown_days:g} days ago (cool-down)",
            cursor=cursor,
        )
    context.log.info(f"drift alert of {day:%Y-%m-%d}: requesting weekly_training_job for week {week}")
    request = dg.RunRequest(
        run_key=run_key, partition_key=week, tags={TRIGGER_TAG: "drift", ALERT_DATE_TAG: f"{day:%Y-%m-%d}"}
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


def failure_payload(context: dg.RunFailureSensorContext, monitoring: MonitoringResource) -> dict:
    """What a failed run's alert says (a `text` line for chat webhooks, the facts as fields)."""
    run = context.dagster_run
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    message = context.failure_event.message or "failed"
    partition = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}..{run.tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in run.tags
        else None
    )
    url = monitoring.run_url(run.run_id)
    where = f" ({partition})" if partition else ""
    failed = f", failed steps: {', '.join(steps)}" if steps else ""
    return {
        "text": f"stockpred: run of {run.job_name}{where} failed{failed}: {message} {url}",
        "event": "run_failure",
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": partition,
        "failed_steps": steps,
        "error": message,
        "url": url,
        "tags": {k: v for k, v in run.tags.items() if k.startswith("stockpred/")},
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Every failed run of this code location: logged, and POSTed as JSON to STOCKPRED_ALERT_WEBHOOK_URL",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, monitoring: MonitoringResource):
    """Log the failure and post it to the webhook; a webhook that refuses it fails the tick (shown in the UI)."""
    payload = failure_payload(context, monitoring)
    context.log.error(payload["text"])
    context.log.info(monitoring.send(payload))
