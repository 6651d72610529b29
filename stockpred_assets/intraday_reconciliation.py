"""Reconciliation at the close: the session's intraday bars, aggregated per ticker to a daily bar, against the daily
provider bar that validated_bars kept for the same date.

Prices come from the regular session only (bars starting in [open, close), 13:00 on half days): the daily bar's
open, high, low and close are the regular session's. Volume sums every bar of the session date, extended hours
included: consolidated daily volume counts pre- and after-market trades (SPY on 2013-10-07: 81.5 M shares in the
regular session, 92.7 M over the day's bars, 96.1 M in the daily bar).

Tolerances, relative to the daily bar:
- prices 0.5%: the official open and close are the primary exchange's auction prints, the bars' first and last
  trades are consolidated trades around them, and bars can miss odd lots and late reports; a few cents on a liquid
  name is 0.01-0.1% (the real 2013-10-07 session: IBM's first trade 182.00 against the 181.85 official open,
  0.08%), while a wrong unit, a missed split or a stalled feed is off by far more than 0.5%;
- volume 10%: late-reported (Form T) and out-of-sequence trades, odd lots and the closing cross can be counted by
  the daily source and missing from the bars (3.5% for SPY, under 2% for single stocks on 2013-10-07); a stream
  that lost minutes of bars is short by more.
"""

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_assets.intraday_stream import LAYER, TABLE, session_hours
from stockpred_assets.metadata import frame_table, table_metadata
from stockpred_assets.partitions import trading_days
from stockpred_resources.lake import DuckDBResource, LakeResource

RECONCILIATION = ("validated", "intraday_reconciliation")
PRICE_TOLERANCE = 0.005
VOLUME_TOLERANCE = 0.10
TOLERANCES = {
    "open": PRICE_TOLERANCE,
    "high": PRICE_TOLERANCE,
    "low": PRICE_TOLERANCE,
    "close": PRICE_TOLERANCE,
    "volume": VOLUME_TOLERANCE,
}
FIELDS = list(TOLERANCES)
COMPARED, MISSING_INTRADAY, MISSING_DAILY = "compared", "missing_intraday", "missing_daily"
AGGREGATE_COLUMNS = ["ticker", "bars", "session_bars", "first_bar", "last_bar", *FIELDS]
COLUMNS = [
    "date",
    "ticker",
    "status",
    "provider",
    "bars",
    "session_bars",
    "first_bar",
    "last_bar",
    *[f"{field}_{part}" for field in FIELDS for part in ("intraday", "daily", "rel_diff", "within")],
    "within_tolerance",
]


def daily_from_intraday(bars: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """One row per ticker: open (first), high (max), low (min), close (last) of the bars starting in the regular
    session, volume summed over all the date's bars, the bar counts and the first and last bar start (UTC)."""
    if not len(bars):
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in AGGREGATE_COLUMNS}).astype({"ticker": "object"})
    bars = bars.assign(ts=pd.to_datetime(bars["ts"], utc=True)).sort_values(["ticker", "ts"])
    hours = session_hours(day)
    in_session = (bars["ts"] >= hours[0]) & (bars["ts"] < hours[1]) if hours else pd.Series(False, index=bars.index)
    by_ticker = bars.groupby("ticker")
    session = bars[in_session].groupby("ticker")
    frame = pd.DataFrame(
        {
            "bars": by_ticker.size(),
            "session_bars": session.size(),
            "first_bar": by_ticker["ts"].min(),
            "last_bar": by_ticker["ts"].max(),
            "open": session["open"].first(),
            "high": session["high"].max(),
            "low": session["low"].min(),
            "close": session["close"].last(),
            "volume": by_ticker["volume"].sum(),
        }
    )
    frame["session_bars"] = frame["session_bars"].fillna(0).astype("int64")
    return frame.rename_axis("ticker").reset_index()[AGGREGATE_COLUMNS]


def reconcile(intraday: pd.DataFrame, daily: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Per ticker on either side: each field's value on both sides, its relative difference (intraday / daily - 1)
    and whether it is within tolerance; `status` says when a side is missing (its fields are then empty)."""
    aggregated = daily_from_intraday(intraday, day)
    daily = (
        daily[["ticker", "provider", *FIELDS]] if len(daily) else pd.DataFrame(columns=["ticker", "provider", *FIELDS])
    )
    both = aggregated.merge(daily, on="ticker", how="outer", suffixes=("_intraday", "_daily"), indicator=True)
    both["status"] = both["_merge"].map({"both": COMPARED, "right_only": MISSING_INTRADAY, "left_only": MISSING_DAILY})
    compared = both["status"] == COMPARED
    for field, tolerance in TOLERANCES.items():
        mine, theirs = both[f"{field}_intraday"].astype("float64"), both[f"{field}_daily"].astype("float64")
        both[f"{field}_intraday"], both[f"{field}_daily"] = mine, theirs
        both[f"{field}_rel_diff"] = np.where(compared & (theirs != 0), mine / theirs.where(theirs != 0) - 1.0, np.nan)
        both[f"{field}_within"] = pd.array(
            np.where(compared, both[f"{field}_rel_diff"].abs() <= tolerance, pd.NA), dtype="boolean"
        )
    both["within_tolerance"] = pd.array(
        np.where(compared, both[[f"{f}_within" for f in FIELDS]].fillna(False).all(axis=1), pd.NA), dtype="boolean"
    )
    both["date"] = pd.Timestamp(day)
    both["bars"] = both["bars"].fillna(0).astype("int64")
    both["session_bars"] = both["session_bars"].fillna(0).astype("int64")
    return both[COLUMNS].sort_values("ticker", ignore_index=True)


def _usage(table: pd.DataFrame) -> pd.DataFrame:
    """Each field's absolute relative difference as a share of its tolerance (1.0: at the tolerance)."""
    return pd.DataFrame({f: table[f"{f}_rel_diff"].abs() / t for f, t in TOLERANCES.items()}, index=table.index)


def _worst(table: pd.DataFrame) -> tuple[str, float]:
    """The field furthest out relative to its tolerance, as "TICKER field: +x.xxx% (tolerance y%)", and its relative
    difference."""
    usage = _usage(table.set_index("ticker")).stack()
    if usage.dropna().empty:
        return "-", float("nan")
    ticker, field = usage.idxmax()
    value = float(table.set_index("ticker").loc[ticker, f"{field}_rel_diff"])
    return f"{ticker} {field}: {value:+.3%} (tolerance {TOLERANCES[field]:.1%})", value


@dg.asset(
    partitions_def=trading_days,
    deps=["intraday_bars", "validated_bars"],
    kinds={"pandas", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
)
def intraday_reconciliation(
    context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """The session's intraday bars aggregated per ticker against the validated daily bar of the same date: per
    ticker and field the relative difference and whether it is within tolerance (prices 0.5%, volume 10%: the
    module's docstring says why), in `validated/intraday_reconciliation`. Runs once both the persisted session
    and the day's validated bars are there."""
    day = pd.Timestamp(context.partition_key)
    lake.require_partitions(LAYER, TABLE, [day])
    lake.require_partitions("validated", "bars", [day])
    table = reconcile(lake.read_range(LAYER, TABLE, day, day), lake.read_range("validated", "bars", day, day), day)
    paths = lake.write_partitions(*RECONCILIATION, table, [day])
    duckdb.register_view(lake.lake(), *RECONCILIATION)
    compared = table[table["status"] == COMPARED]
    outside = compared[~compared["within_tolerance"].astype(bool)]
    worst, worst_value = _worst(compared)
    off = {
        row.ticker: [f for f in FIELDS if not bool(getattr(row, f"{f}_within"))]
        for row in outside.itertuples(index=False)
    }
    ranked = compared.assign(usage=_usage(compared).max(axis=1)).sort_values("usage", ascending=False)
    shown = ranked[["ticker", *[f"{f}_rel_diff" for f in FIELDS], "within_tolerance"]].head(20)
    if len(outside):
        context.log.warning(f"{len(outside)} ticker(s) outside tolerance on {day:%Y-%m-%d}; worst {worst}")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table, paths),
            "tickers_compared": len(compared),
            "within_tolerance": len(compared) - len(outside),
            "outside_tolerance": len(outside),
            "fields_outside_tolerance": dg.MetadataValue.json(off),
            "worst_field": worst,
            **({"worst_rel_diff": dg.MetadataValue.float(worst_value)} if np.isfinite(worst_value) else {}),
            "missing_intraday": int((table["status"] == MISSING_INTRADAY).sum()),
            "missing_daily": int((table["status"] == MISSING_DAILY).sum()),
            "missing_daily_tickers": dg.MetadataValue.json(
                sorted(table.loc[table["status"] == MISSING_DAILY, "ticker"])[:50]
            ),
            "largest_differences": frame_table(shown.astype({"within_tolerance": "object"})),
            "tolerances": dg.MetadataValue.json(TOLERANCES),
        }
    )
