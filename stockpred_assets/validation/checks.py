"""Checks on validated bars; the ones that would corrupt features are blocking."""

import dagster as dg
import pandas as pd

from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_resources.lake import LakeResource
from stockpred_resources.market_data import MarketDataResource


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
    context: dg.AssetCheckExecutionContext, lake: LakeResource, market_data: MarketDataResource
) -> dg.AssetCheckResult:
    """Every session of the window has a bar for every ticker that was ingested or dead-lettered in it."""
    days, bars = _window_bars(context, lake)
    sessions = calendar.sessions(days[0], days[-1])
    tickers: set[str] = set(bars["ticker"]) if len(bars) else set()
    for name in market_data.providers:
        for table in (f"bars_{name}", f"dead_letter_{name}"):
            seen = lake.read_range("raw", table, days[0], days[-1], columns=["ticker"])
            tickers |= set(seen["ticker"]) if len(seen) else set()
    expected = len(sessions) * len(tickers)
    have = bars.groupby("ticker")["date"].nunique() if len(bars) else pd.Series(dtype=int)
    short = {t: len(sessions) - int(have.get(t, 0)) for t in sorted(tickers) if have.get(t, 0) < len(sessions)}
    return dg.AssetCheckResult(
        passed=not short,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "sessions": len(sessions),
            "tickers": len(tickers),
            "expected_bars": expected,
            "missing_bars": int(sum(short.values())),
            "tickers_missing_sessions": dg.MetadataValue.json(short),
        },
    )


@dg.asset_check(asset="validated_bars", partitions_def=trading_days)
def validated_bars_no_unexplained_jumps(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Moves beyond 8 robust sigmas on days without a corporate action are kept but need a look (spin-offs, crashes)."""
    days = partition_days(context)
    flags = lake.read_range("validated", "flags", days[0], days[-1])
    table = flags.sort_values("sigmas").head(20).round(3).to_markdown(index=False) if len(flags) else "none"
    return dg.AssetCheckResult(
        passed=flags.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged_jumps": len(flags), "largest": dg.MetadataValue.md(table)},
    )


@dg.asset_check(asset="validated_bars", partitions_def=trading_days)
def validated_bars_fresh(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """The lake's newest validated session is at most two sessions behind the last completed NYSE session."""
    dates = lake.lake().partition_dates("validated", "bars")
    now = pd.Timestamp.now(tz="America/New_York").tz_localize(None)
    latest_session = calendar.previous_sessions(now.normalize() + pd.Timedelta(days=1), 1)[-1]
    if now.hour < 18 and latest_session == now.normalize():
        latest_session = calendar.previous_sessions(latest_session, 1)[-1]  # today's bars arrive after the close
    newest = max(dates) if dates else None
    lag = len(calendar.sessions(newest, latest_session)) - 1 if newest is not None else None
    return dg.AssetCheckResult(
        passed=lag is not None and lag <= 2,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "newest_partition": f"{newest:%Y-%m-%d}" if newest is not None else "-",
            "last_completed_session": f"{latest_session:%Y-%m-%d}",
            "lag_sessions": lag if lag is not None else -1,
        },
    )
