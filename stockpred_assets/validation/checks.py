"""Checks on validated bars; the ones that would corrupt features are blocking."""

import dagster as dg

from stockpred_assets.core import calendar
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import SimulatedProvider


def _window_bars(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    days = partition_days(context)
    return days, lake.read_range("validated", "bars", days[0], days[-1])


@dg.asset_check(asset="validated_bars", partitions_def=trading_days, blocking=True)
def validated_bars_unique_and_consistent(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """No duplicate (date, ticker) and OHLC consistent on every validated row."""
    _, bars = _window_bars(context, lake)
    duplicates = int(bars.duplicated(["date", "ticker"]).sum()) if len(bars) else 0
    bad_ohlc = 0
    if len(bars):
        body_hi, body_lo = bars[["open", "close"]].max(axis=1), bars[["open", "close"]].min(axis=1)
        bad_ohlc = int(((bars["high"] < body_hi) | (bars["low"] > body_lo) | (bars["low"] <= 0)).sum())
    return dg.AssetCheckResult(
        passed=duplicates == 0 and bad_ohlc == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"duplicates": duplicates, "inconsistent_ohlc": bad_ohlc, "rows": len(bars)},
    )


@dg.asset_check(asset="validated_bars", partitions_def=trading_days)
def validated_bars_complete(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, simulated_provider: SimulatedProvider
) -> dg.AssetCheckResult:
    """Every session of the window has a bar for every ticker of the universe."""
    days, bars = _window_bars(context, lake)
    sessions = calendar.sessions(days[0], days[-1])
    expected = len(sessions) * len(simulated_provider.universe())
    missing = expected - len(bars)
    return dg.AssetCheckResult(
        passed=missing == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"sessions": len(sessions), "expected_bars": expected, "missing_bars": missing},
    )
