"""Online features: the latest complete feature vector per ticker, for the prediction service."""

import dagster as dg
import pandas as pd

from stockpred_assets.core.features import latest_per_ticker
from stockpred_assets.metadata import table_metadata
from stockpred_resources.cache import RedisResource
from stockpred_resources.lake import LakeResource
from stockpred_resources.online_store import push_vectors

RECENT_DAYS = 14  # calendar days of feature partitions scanned for each ticker's latest vector


@dg.asset(deps=["features"], kinds={"parquet", "redis"})
def online_features(
    context: dg.AssetExecutionContext, lake: LakeResource, redis: RedisResource
) -> dg.MaterializeResult:
    """Latest feature vector per ticker, written to the lake and, when configured, to Redis."""
    dates = lake.lake().partition_dates("features", "features")
    if not dates:
        raise dg.Failure("the features table is empty: materialize `features` first")
    recent = lake.read_range("features", "features", dates[-1] - pd.Timedelta(days=RECENT_DAYS), dates[-1])
    latest = latest_per_ticker(recent)
    path = lake.write_table("serving", "online_features", latest)
    pushed = push_vectors(redis.client(), latest) if redis.enabled else 0
    stale = latest[latest["date"] < latest["date"].max()]["ticker"].tolist() if len(latest) else []
    return dg.MaterializeResult(
        metadata={
            **table_metadata(latest, [path]),
            "redis_vectors": dg.MetadataValue.int(pushed),
            "stale_tickers": dg.MetadataValue.json(stale),
        }
    )
