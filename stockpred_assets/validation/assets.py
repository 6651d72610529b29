"""Validated bars: the canonical schema enforced, rejected rows quarantined with their reason."""

import dagster as dg

from stockpred_assets.core.quality import split_valid
from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_resources.lake import DuckDBResource, LakeResource


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["raw_bars_simulated"],
    kinds={"pandas", "pandera", "parquet"},
)
def validated_bars(
    context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Raw bars that pass the schema; every other row goes to the quarantine table with its rule."""
    days = partition_days(context)
    lake.require_partitions("raw", "bars_simulated", days)
    raw = lake.read_range("raw", "bars_simulated", days[0], days[-1])
    valid, quarantined = split_valid(raw)
    paths = lake.write_partitions("validated", "bars", valid, days)
    lake.write_partitions("validated", "quarantine", quarantined, days)
    for table in ("bars", "quarantine"):
        duckdb.register_view(lake.lake(), "validated", table)
    by_rule = quarantined["rule"].value_counts().to_dict() if len(quarantined) else {}
    return dg.MaterializeResult(
        metadata={
            **table_metadata(valid, paths),
            "rows_in": dg.MetadataValue.int(len(raw)),
            "rows_quarantined": dg.MetadataValue.int(len(quarantined)),
            "quarantined_by_rule": dg.MetadataValue.json(by_rule),
        }
    )
