"""Weekly retraining: the model for a week is trained before its Monday open."""

import dagster as dg

weekly_training_job = dg.define_asset_job(
    "weekly_training_job",
    # the weekly evaluation asset; `predictions` (daily) and `backtest_history` run with the daily job
    selection=dg.AssetSelection.groups("training") | dg.AssetSelection.assets("backtest_report"),
)

weekly_training_schedule = dg.build_schedule_from_partitioned_job(
    weekly_training_job,
    name="weekly_training_schedule",
    hour_of_day=6,
    minute_of_hour=0,
    description="Mondays 06:00 New York: train this week's model on data up to the weekend",
)
