"""Validated bars: each provider's raw rows through the schema and anomaly rules, merged by provider priority."""

import dagster as dg
import pandas as pd

from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.data.merge import disagreements, merge_by_priority
from stockpred_core.data.quality import QUARANTINE_COLUMNS, split_valid, validate_provider
from stockpred_core.data.schemas import EVENT_COLUMNS, empty_frame
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource

RAW_ASSETS = ["raw_bars_simulated", "raw_bars_yahoo", "raw_bars_alphavantage", "raw_bars_files"]
CONTEXT_SESSIONS = 25  # sessions before the window the anomaly rules look at (rolling volume, previous close)
TABLES = ("bars", "quarantine", "events", "quarantined_events", "flags", "disagreements")


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    present = [f for f in frames if len(f)]
    return pd.concat(present, ignore_index=True) if present else empty_frame(columns)


def _validate(lake: LakeResource, name: str, days: list[pd.Timestamp], raw: pd.DataFrame, reference: pd.DataFrame):
    events = lake.read_range("raw", f"events_{name}", days[0], days[-1])
    context_start = calendar.lookback_start(days[0], CONTEXT_SESSIONS)
    context = lake.read_range("raw", f"bars_{name}", context_start, days[0] - pd.Timedelta(days=1))
    clean_context = split_valid(context)[0] if len(context) else context
    return len(raw), validate_provider(raw, events, clean_context, reference=reference)


def _others(raws: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """The other providers' closes, which settle a provider's duplicated bars."""
    return _concat([f[["date", "ticker", "close"]] for n, f in raws.items() if n != name], ["date", "ticker", "close"])


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=RAW_ASSETS,
    kinds={"pandas", "pandera", "parquet"},
)
def validated_bars(
    context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, market_data: MarketDataResource
) -> dg.MaterializeResult:
    """Bars that pass every rule, primary provider first with a per-ticker fallback; rejects go to quarantine."""
    days = partition_days(context)
    lake.require_partitions("raw", f"bars_{market_data.providers[0]}", days)
    raws = {name: lake.read_range("raw", f"bars_{name}", days[0], days[-1]) for name in market_data.providers}
    results = {name: _validate(lake, name, days, raws[name], _others(raws, name)) for name in raws}
    checked = [r for _, r in results.values()]
    tables = {
        "bars": merge_by_priority([r.valid for r in checked]),
        "quarantine": _concat([r.quarantined for r in checked], QUARANTINE_COLUMNS),
        "events": merge_by_priority(
            [_concat([r.events for r in checked], EVENT_COLUMNS)], keys=("date", "ticker", "kind")
        ),
        "quarantined_events": _concat([r.quarantined_events for r in checked], [*EVENT_COLUMNS, "rule", "reason"]),
        "flags": _concat([r.flags for r in checked], ["date", "ticker", "log_return", "sigmas"]),
        "disagreements": disagreements([r.valid for r in checked], market_data.disagreement_bps),
    }
    paths = {table: lake.write_partitions("validated", table, frame, days) for table, frame in tables.items()}
    for table in TABLES:
        duckdb.register_view(lake.lake(), "validated", table)
    merged, quarantine, events = tables["bars"], tables["quarantine"], tables["events"]
    valid_rows = sum(len(r.valid) for r in checked)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(merged, paths["bars"]),
            "rows_in": sum(n for n, _ in results.values()),
            "rows_valid": valid_rows,
            "rows_quarantined": len(quarantine),
            "rows_superseded": valid_rows - len(merged),  # valid rows of a lower-priority provider not needed
            "quarantined_by_rule": dg.MetadataValue.json(quarantine["rule"].value_counts().to_dict()),
            "rows_by_provider": dg.MetadataValue.json(
                merged["provider"].value_counts().to_dict() if len(merged) else {}
            ),
            "detected_splits": int((events["provider"] == "detected").sum()) if len(events) else 0,
            "quarantined_events": len(tables["quarantined_events"]),
            "flagged_jumps": len(tables["flags"]),
            "disagreements": len(tables["disagreements"]),
        }
    )
