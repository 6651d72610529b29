"""Ingest, validate and featurize every trading day after the US close."""

import dagster as dg
import pandas as pd

from stockpred_assets.core import calendar
from stockpred_assets.partitions import TIMEZONE

daily_data_job = dg.define_asset_job(
    "daily_data_job",
    selection=dg.AssetSelection.groups("ingestion", "validation", "features"),
)


@dg.schedule(job=daily_data_job, cron_schedule="30 18 * * 1-5", execution_timezone=TIMEZONE)
def daily_data_schedule(context: dg.ScheduleEvaluationContext):
    """At 18:30 New York time, materialize the day's partition when it was a session."""
    today = pd.Timestamp(context.scheduled_execution_time.date())  # already in New York time
    if not calendar.is_session(today):
        return dg.SkipReason(f"{today.date()} is not an NYSE session")
    key = f"{today:%Y-%m-%d}"
    return dg.RunRequest(run_key=key, partition_key=key)
