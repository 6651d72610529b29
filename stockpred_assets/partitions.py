"""Partitions shared across groups: trading days for data, weeks for models."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from stockpred_core.data import calendar

TIMEZONE = "America/New_York"

# Weekdays; an exchange holiday is a valid, empty session. end_offset=1 makes today's partition available so the
# after-close schedule can materialize it.
trading_days = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 * * 1-5", fmt="%Y-%m-%d", start=calendar.FIRST_SESSION, timezone=TIMEZONE, end_offset=1
)

# A model for week W (keyed by its Monday) is trained on data dated before that Monday only. The first week is the
# first Monday after the calendar's first session (2013-01-07 for the default 2013-01-02).
_first = pd.Timestamp(calendar.FIRST_SESSION)
weeks = dg.WeeklyPartitionsDefinition(
    start_date=f"{_first + pd.offsets.Week(weekday=0):%Y-%m-%d}", day_offset=1, timezone=TIMEZONE, end_offset=1
)


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[pd.Timestamp]:
    """The weekday partitions of the run (one for a daily run, many for a single-run backfill)."""
    window = context.partition_time_window
    return list(pd.date_range(window.start.date(), window.end.date() - pd.Timedelta(days=1), freq="B"))


def week_start(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> pd.Timestamp:
    """The Monday that starts the run's weekly partition: the training cut-off."""
    return pd.Timestamp(context.partition_time_window.start.date())
