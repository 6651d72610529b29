"""Raw bars per provider, one Parquet partition per trading day."""

import dagster as dg

from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import SimulatedProvider


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas", "parquet"},
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
)
def raw_bars_simulated(
    context: dg.AssetExecutionContext, simulated_provider: SimulatedProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Daily bars from the simulated market; a backfill fetches its whole range in one call."""
    days = partition_days(context)
    bars = simulated_provider.fetch_bars(days[0], days[-1])
    paths = lake.write_partitions("raw", "bars_simulated", bars, days)
    context.log.info(f"wrote {len(bars)} bars over {len(days)} partitions")
    return dg.MaterializeResult(metadata={**table_metadata(bars, paths), "provider": simulated_provider.name})
