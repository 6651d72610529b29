"""Ingest, validate and featurize every trading day after the US close, and refresh the service's online features;
retry dead-lettered tickers."""

import dagster as dg
import pandas as pd

from stockpred_assets.partitions import TIMEZONE
from stockpred_core.data import calendar
from stockpred_resources.lake import LakeResource
from stockpred_resources.market_data import MarketDataResource

RETRY_LOOKBACK_DAYS = 10


def daily_data_job(providers: list[str]):
    """Raw bars of the enabled providers, then validation and features, for one or many trading days; the day's
    predictions by the champion in force and the rolling report over all of them; and the online feature vectors
    the service answers from, so that they are the day's whether or not the champion changed."""
    raw = dg.AssetSelection.assets(*[f"raw_bars_{name}" for name in providers])
    evaluation = dg.AssetSelection.assets("predictions", "backtest_history")
    serving = dg.AssetSelection.assets("online_features")
    return dg.define_asset_job(
        "daily_data_job", selection=raw | dg.AssetSelection.groups("validation", "features") | evaluation | serving
    )


@dg.schedule(job_name="daily_data_job", cron_schedule="30 18 * * 1-5", execution_timezone=TIMEZONE)
def daily_data_schedule(context: dg.ScheduleEvaluationContext):
    """At 18:30 New York time, materialize the day's partition when it was a session."""
    today = pd.Timestamp(context.scheduled_execution_time.date())  # already in New York time
    if not calendar.is_session(today):
        return dg.SkipReason(f"{today.date()} is not an NYSE session")
    key = f"{today:%Y-%m-%d}"
    return dg.RunRequest(run_key=key, partition_key=key)


@dg.sensor(job_name="daily_data_job", minimum_interval_seconds=3600)
def dead_letter_retry_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, market_data: MarketDataResource):
    """Re-run the recent partitions whose dead-letter tables hold retryable failures."""
    store = lake.lake()
    since = pd.Timestamp.now(tz=TIMEZONE).tz_localize(None).normalize() - pd.Timedelta(days=RETRY_LOOKBACK_DAYS)
    requests = []
    for day in sorted(
        {d for name in market_data.providers for d in store.partition_dates("raw", f"dead_letter_{name}") if d >= since}
    ):
        failed = pd.concat([store.read_range("raw", f"dead_letter_{name}", day, day) for name in market_data.providers])
        retryable = failed[failed["retryable"].astype(bool)] if len(failed) else failed
        if len(retryable):
            key = f"{day:%Y-%m-%d}"
            stamp = pd.Timestamp(retryable["attempted_at"].max())
            requests.append(
                dg.RunRequest(
                    run_key=f"dead-letter-{key}-{stamp:%Y%m%dT%H%M%S}",
                    partition_key=key,
                    tags={"stockpred/retry": ",".join(sorted(retryable["ticker"].unique()))},
                )
            )
    return requests or dg.SkipReason("no retryable failures in the last 10 days")
