"""Ingest the configured alternative sources and compute the alternative features every trading day, after the
daily job has built the feature table (whose rows alt_features fills)."""

import dagster as dg
import pandas as pd

from stockpred_assets.partitions import TIMEZONE
from stockpred_core.data import calendar

JOB = "alternative_data_job"


def alternative_data_job(raw_assets: list[str]):
    """The raw assets of the configured sources, then alt_features, for one or many trading days (a backfill is one
    run). sentiment_model is not in it: it is trained on demand, and alt_features scores with its champion."""
    return dg.define_asset_job(JOB, selection=dg.AssetSelection.assets(*raw_assets, "alt_features"))


@dg.schedule(job_name=JOB, cron_schedule="30 19 * * 1-5", execution_timezone=TIMEZONE)
def alternative_data_schedule(context: dg.ScheduleEvaluationContext):
    """At 19:30 New York time (an hour after daily_data_job, which writes the day's feature rows), materialize the
    day's partition when it was a session."""
    today = pd.Timestamp(context.scheduled_execution_time.date())
    if not calendar.is_session(today):
        return dg.SkipReason(f"{today.date()} is not an NYSE session")
    key = f"{today:%Y-%m-%d}"
    return dg.RunRequest(run_key=key, partition_key=key)


# The service reads each ticker's alternative columns from the online vectors, which online_features writes from the
# newest alt_features partition. daily_data_job refreshes online_features before this group's job has run, so a
# champion of the alternative set would wait a day for the day's columns (the service answers 503 for it): each new
# alt_features partition refreshes the online vectors instead.
online_features_job = dg.define_asset_job("online_features_job", selection=dg.AssetSelection.assets("online_features"))


@dg.asset_sensor(
    asset_key=dg.AssetKey("alt_features"),
    job=online_features_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def alt_features_online_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """Refresh the online vectors after alt_features is materialized (once per materialization)."""
    partition = (asset_event.dagster_event.partition if asset_event.dagster_event else None) or ""
    return dg.RunRequest(  # one run per materialization event: its partition and moment name it
        run_key=f"alt-features-{partition}-{asset_event.timestamp:.6f}", tags={"alt_features_partition": partition}
    )
