"""The feature table: indicators per (date, ticker), computed with a declared look-back of bars."""

import dagster as dg
import pandas as pd

from stockpred_assets.core import calendar
from stockpred_assets.core.adjustments import adjust
from stockpred_assets.core.features import FEATURE_COLUMNS, LOOKBACK_SESSIONS, compute_features
from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_resources.lake import DuckDBResource, LakeResource

# The look-back in weekday partitions: sessions plus room for the holidays among them.
LOOKBACK_PARTITIONS = LOOKBACK_SESSIONS + LOOKBACK_SESSIONS // 20 + 5


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetDep(
            "validated_bars", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_PARTITIONS)
        )
    ],
    kinds={"pandas", "parquet", "duckdb"},
)
def features(context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Technical indicators and return statistics; a value for day D uses bars up to D only."""
    days = partition_days(context)
    lake.require_partitions("validated", "bars", days)
    history_start = calendar.previous_sessions(days[0], LOOKBACK_SESSIONS)[0]
    bars = lake.read_range("validated", "bars", history_start, days[-1])
    events = lake.read_range("validated", "events", history_start, days[-1])
    table = compute_features(adjust(bars, events))
    table = table[table["date"] >= pd.Timestamp(days[0])]
    paths = lake.write_partitions("features", "features", table, days)
    view = duckdb.register_view(lake.lake(), "features", "features")
    complete = table.dropna(subset=FEATURE_COLUMNS)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table, paths),
            "complete_rows": dg.MetadataValue.int(len(complete)),
            "feature_columns": dg.MetadataValue.json(FEATURE_COLUMNS),
            "duckdb_view": dg.MetadataValue.text(view),
            "preview": dg.MetadataValue.md(
                complete.tail(5).round(4).to_markdown(index=False) if len(complete) else "-"
            ),
        }
    )
