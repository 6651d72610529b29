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


def missing_sessions(sessions: pd.DatetimeIndex, seen: pd.DataFrame, have: pd.DataFrame) -> pd.DataFrame:
    """Per ticker, the sessions between its first and last sign of life in the window (a raw bar, a dead-letter row
    or a validated bar: `seen`) without a validated bar (`have`): a listing or a delisting inside the window is not
    a gap, a halt or a quarantined bar is. Columns ticker, missing, first, last (sorted by missing, descending)."""
    columns = ["ticker", "missing", "first", "last"]
    if seen.empty or not len(sessions):
        return pd.DataFrame(columns=columns)
    span = seen.groupby("ticker")["date"].agg(["min", "max"])
    position = pd.Series(range(len(sessions)), index=sessions)
    lo = position.reindex(span["min"].to_numpy()).to_numpy()
    hi = position.reindex(span["max"].to_numpy()).to_numpy()
    expected = pd.Series(hi - lo + 1, index=span.index)
    got = have[have["date"].isin(sessions)].groupby("ticker")["date"].nunique().reindex(span.index, fill_value=0)
    short = (expected - got)[lambda gap: gap > 0]
    rows = []
    for ticker, count in short.items():
        window = sessions[int(position[span.at[ticker, "min"]]) : int(position[span.at[ticker, "max"]]) + 1]
        gaps = window.difference(pd.DatetimeIndex(have.loc[have["ticker"] == ticker, "date"]))
        rows.append((ticker, int(count), gaps.min(), gaps.max()))
    return pd.DataFrame(rows, columns=columns).sort_values(["missing", "ticker"], ascending=[False, True])


@dg.asset_check(asset="validated_bars", partitions_def=trading_days)
def validated_bars_complete(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, market_data: MarketDataResource
) -> dg.AssetCheckResult:
    """Every ticker has a validated bar on every session between its first and last appearance in the window (a raw
    bar, a dead-letter row or a validated bar), so a listing or delisting inside the window is not a gap."""
    days, bars = _window_bars(context, lake)
    sessions = calendar.sessions(days[0], days[-1])
    seen = [bars[["date", "ticker"]]] if len(bars) else []
    for name in market_data.providers:
        for table in (f"bars_{name}", f"dead_letter_{name}"):
            rows = lake.read_range("raw", table, days[0], days[-1], columns=["date", "ticker"])
            seen += [rows] if len(rows) else []
    seen = pd.concat(seen, ignore_index=True) if seen else pd.DataFrame(columns=["date", "ticker"])
    seen = seen[seen["date"].isin(sessions)]
    have = bars[["date", "ticker"]] if len(bars) else pd.DataFrame(columns=["date", "ticker"])
    short = missing_sessions(sessions, seen, have)
    quarantine = lake.read_range("validated", "quarantine", days[0], days[-1], columns=["date", "ticker", "reason"])
    quarantined = quarantine[quarantine["ticker"].isin(short["ticker"])] if len(quarantine) else quarantine
    description = None
    if len(short):
        worst = "; ".join(
            f"{r.ticker} lacks {r.missing} (between {r.first:%Y-%m-%d} and {r.last:%Y-%m-%d})"
            for r in short.head(5).itertuples()
        )
        description = (
            f"{len(short)} ticker(s) lack {int(short['missing'].sum())} bar(s) inside their span in the window: "
            f"{worst}. {len(quarantined)} of the missing rows are in validated/quarantine with their reason; the "
            "others never arrived (halts, or gaps in the source)."
        )
    return dg.AssetCheckResult(
        passed=short.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "sessions": len(sessions),
            "tickers": int(seen["ticker"].nunique()),
            "missing_bars": int(short["missing"].sum()),
            "quarantined_of_them": len(quarantined),
            "tickers_missing_sessions": dg.MetadataValue.md(
                short.head(20).to_markdown(index=False) if len(short) else "none"
            ),
        },
    )


@dg.asset_check(asset="validated_bars", partitions_def=trading_days)
def validated_bars_no_unexplained_jumps(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Moves beyond 8 robust sigmas on days without a corporate action are kept but need a look (spin-offs, crashes)."""
    days = partition_days(context)
    flags = lake.read_range("validated", "flags", days[0], days[-1])
    largest = flags.reindex(flags["sigmas"].abs().sort_values(ascending=False).index) if len(flags) else flags
    table = largest.head(20).round(3).to_markdown(index=False) if len(flags) else "none"
    description = None
    if len(flags):
        named = "; ".join(f"{r.ticker} {r.date:%Y-%m-%d} ({r.sigmas:+.1f} sigma)" for r in largest.head(5).itertuples())
        description = (
            f"{len(flags)} move(s) beyond 8 robust sigmas on days without a recorded split or dividend: {named}. "
            "They are kept (a crash is data) and listed in validated/flags: an unreported corporate action (a "
            "spin-off, a reverse split) would need an event in the provider's data."
        )
    return dg.AssetCheckResult(
        passed=flags.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"flagged_jumps": len(flags), "largest": dg.MetadataValue.md(table)},
    )


@dg.asset_check(asset="validated_bars", partitions_def=trading_days)
def validated_bars_fresh(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """The lake's newest validated session is at most two sessions behind the last completed NYSE session. Judged
    on runs whose window reaches the last two sessions: a backfill of past years says nothing about whether today's
    data arrived (it passes and says so)."""
    days = partition_days(context)
    dates = lake.lake().partition_dates("validated", "bars")
    now = pd.Timestamp.now(tz="America/New_York").tz_localize(None)
    latest_session = calendar.previous_sessions(now.normalize() + pd.Timedelta(days=1), 1)[-1]
    if now.hour < 18 and latest_session == now.normalize():
        latest_session = calendar.previous_sessions(latest_session, 1)[-1]  # today's bars arrive after the close
    newest = max(dates) if dates else None
    lag = len(calendar.sessions(newest, latest_session)) - 1 if newest is not None else None
    behind = len(calendar.sessions(days[-1], latest_session)) - 1
    historical = behind > 2
    passed = historical or (lag is not None and lag <= 2)
    if historical:
        description = (
            f"a run of past partitions (its last, {days[-1]:%Y-%m-%d}, is {behind} sessions before the last "
            f"completed session {latest_session:%Y-%m-%d}): freshness is judged by the runs of recent partitions"
        )
    elif passed:
        description = None
    else:
        newest_text = f"end on {newest:%Y-%m-%d}, {lag} sessions" if newest is not None else "are missing,"
        description = (
            f"validated bars {newest_text} behind the last completed session {latest_session:%Y-%m-%d}: the daily "
            "ingest has not run, or failed, since (see raw/dead_letter_<provider> and the run's logs)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "newest_partition": f"{newest:%Y-%m-%d}" if newest is not None else "-",
            "last_completed_session": f"{latest_session:%Y-%m-%d}",
            "lag_sessions": lag if lag is not None else -1,
            "historical_run": historical,
        },
    )
