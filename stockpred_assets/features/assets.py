"""The feature table: indicators per (date, ticker), computed with a declared look-back of bars."""

import dagster as dg

from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.features.batch import FEATURE_COLUMNS, LOOKBACK_SESSIONS, MarketContext, compute_features
from stockpred_core.features.catalog import FEATURE_SET_VERSION, LIBRARY_COLUMNS, registry_frame
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource

# The look-back in weekday partitions: sessions plus room for the holidays among them.
LOOKBACK_PARTITIONS = LOOKBACK_SESSIONS + LOOKBACK_SESSIONS // 20 + 5


def market_context(lake: LakeResource, market_data: MarketDataResource) -> MarketContext:
    """Index and VIX from the configured files, sectors from what the providers recorded at ingestion."""
    sectors: dict[str, str] = {}
    for name in reversed(market_data.providers):  # the primary provider's mapping wins
        try:
            sectors.update(lake.read_table("reference", f"sectors_{name}").set_index("ticker")["sector"].to_dict())
        except FileNotFoundError:
            continue
    return MarketContext(index_close=market_data.index_close(), vix=market_data.vix(), sectors=sectors)


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
def features(
    context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, market_data: MarketDataResource
) -> dg.MaterializeResult:
    """Technical indicators, statistics and market context, and the Alpha158-like library (`a158_*`, the inputs of
    recipes that name `alpha158`); a value for day D uses bars up to D only."""
    days = partition_days(context)
    lake.require_partitions("validated", "bars", days)
    history_start = calendar.lookback_start(days[0], LOOKBACK_SESSIONS)
    bars = lake.read_range("validated", "bars", history_start, days[-1])
    events = lake.read_range("validated", "events", history_start, days[-1])
    table = compute_features(adjust(bars, events), market_context(lake, market_data), since=days[0])
    paths = lake.write_partitions("features", "features", table, days)
    lake.write_table("features", "registry", registry_frame())
    store = lake.lake()
    for view, (layer, name) in {"features": ("features", "features"), "bars": ("validated", "bars")}.items():
        duckdb.register_view(store, layer, name, view=view)
    complete = table.dropna(subset=FEATURE_COLUMNS)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table, paths),
            "complete_rows": dg.MetadataValue.int(len(complete)),
            "feature_set_version": FEATURE_SET_VERSION,
            "feature_columns": dg.MetadataValue.json(FEATURE_COLUMNS),
            "library_columns": dg.MetadataValue.int(len(LIBRARY_COLUMNS)),
            "nan_share_by_feature": dg.MetadataValue.json(table[FEATURE_COLUMNS].isna().mean().round(4).to_dict()),
            "duckdb_views": "features, bars",
            "preview": dg.MetadataValue.md(
                complete[["date", "ticker", *FEATURE_COLUMNS[:8]]].tail(5).round(4).to_markdown(index=False)
                if len(complete)
                else "-"
            ),
        }
    )
