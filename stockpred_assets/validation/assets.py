"""Validated bars: each provider's raw rows checked against the schema, merged by provider priority."""

import dagster as dg
import pandas as pd

from stockpred_assets.core.merge import disagreements, merge_by_priority
from stockpred_assets.core.quality import QUARANTINE_COLUMNS, split_valid
from stockpred_assets.core.schemas import EVENT_COLUMNS, empty_frame
from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource

RAW_ASSETS = ["raw_bars_simulated", "raw_bars_yahoo", "raw_bars_alphavantage", "raw_bars_files"]


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=RAW_ASSETS,
    kinds={"pandas", "pandera", "parquet"},
)
def validated_bars(
    context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, market_data: MarketDataResource
) -> dg.MaterializeResult:
    """Bars that pass the schema, primary provider first with a per-ticker fallback; rejects go to quarantine."""
    days = partition_days(context)
    primary, *_ = market_data.providers
    lake.require_partitions("raw", f"bars_{primary}", days)
    valid_by_provider, quarantined, events, rows_in = [], [], [], 0
    for name in market_data.providers:
        raw = lake.read_range("raw", f"bars_{name}", days[0], days[-1])
        rows_in += len(raw)
        valid, bad = split_valid(raw) if len(raw) else (raw, empty_frame(QUARANTINE_COLUMNS))
        valid_by_provider.append(valid)
        quarantined.append(bad)
        events.append(lake.read_range("raw", f"events_{name}", days[0], days[-1]))
    merged = merge_by_priority(valid_by_provider)
    quarantine = pd.concat([q for q in quarantined if len(q)] or [empty_frame(QUARANTINE_COLUMNS)], ignore_index=True)
    merged_events = merge_by_priority([e for e in events if len(e)] or [empty_frame(EVENT_COLUMNS)],
                                      keys=("date", "ticker", "kind"))
    disagree = disagreements(valid_by_provider, market_data.disagreement_bps)
    paths = lake.write_partitions("validated", "bars", merged, days)
    lake.write_partitions("validated", "quarantine", quarantine, days)
    lake.write_partitions("validated", "events", merged_events, days)
    lake.write_partitions("validated", "disagreements", disagree, days)
    for table in ("bars", "quarantine", "events", "disagreements"):
        duckdb.register_view(lake.lake(), "validated", table)
    by_rule = quarantine["rule"].value_counts().to_dict() if len(quarantine) else {}
    return dg.MaterializeResult(
        metadata={
            **table_metadata(merged, paths),
            "rows_in": dg.MetadataValue.int(rows_in),
            "rows_quarantined": dg.MetadataValue.int(len(quarantine)),
            "quarantined_by_rule": dg.MetadataValue.json(by_rule),
            "rows_by_provider": dg.MetadataValue.json(
                merged["provider"].value_counts().to_dict() if len(merged) else {}
            ),
            "disagreements": dg.MetadataValue.int(len(disagree)),
        }
    )
