"""Serving: the latest feature vector per ticker for the prediction service, and the Bento that serves the champion."""

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_assets.metadata import table_metadata
from stockpred_assets.serving.build import build_bento
from stockpred_core.dataset.training_set import ALT_TABLE, MASKS, combined_version, join_alternative
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION
from stockpred_core.features.batch import latest_per_ticker
from stockpred_core.features.catalog import LIBRARY_COLUMNS, LIBRARY_SET, REQUIRED_FEATURES
from stockpred_core.io.model_registry import champion_version
from stockpred_core.io.online_store import push_vectors
from stockpred_resources.lake import LakeResource
from stockpred_resources.redis import RedisResource
from stockpred_resources.tracking import MLflowResource

RECENT_DAYS = 14  # calendar days of feature partitions scanned for each ticker's latest vector


@dg.asset(deps=["features"], kinds={"parquet", "redis"})
def online_features(
    context: dg.AssetExecutionContext, lake: LakeResource, redis: RedisResource
) -> dg.MaterializeResult:
    """Latest feature vector per ticker, written to the lake and, when configured, to Redis (one hash per
    ticker and a packed snapshot of them all). Refreshed by the daily job after each day's features and by
    serving_job when the champion changes; it needs no champion (the service scores the vectors with whichever
    champion it loads), so a fresh deployment's vectors are ready when the first one is promoted. When
    features/alt_features holds the newest vectors' day, each ticker's alternative row of its vector's date is
    appended (the combined feature set, whose version names both)."""
    dates = lake.lake().partition_dates("features", "features")
    if not dates:
        raise dg.Failure("the features table is empty: materialize `features` first")
    recent = recent_rows(lake, [d for d in dates if d >= dates[-1] - pd.Timedelta(days=RECENT_DAYS)])
    latest = latest_per_ticker(recent)
    unserved = without_vector(recent, latest)
    if len(unserved):
        context.log.warning(
            f"{len(unserved)} tickers with feature rows since {recent['date'].min():%Y-%m-%d} have no complete "
            f"vector (a required feature NaN in each of their rows: warming up after a listing or a gap): "
            f"{', '.join(unserved['ticker'].head(10))}"
        )
    latest, alt_note = with_alternative_columns(lake, latest)
    latest = library_last(latest)  # the layout the stream writes: a vector without the library is its first columns
    if alt_note:
        context.log.warning(alt_note)
    path = lake.write_table("serving", "online_features", latest)
    pushed = push_vectors(redis.client(), latest) if redis.enabled else 0
    stale = latest[latest["date"] < latest["date"].max()]["ticker"].tolist() if len(latest) else []
    versions = sorted(latest["feature_set_version"].dropna().astype(str).unique()) if len(latest) else []
    return dg.MaterializeResult(
        metadata={
            **table_metadata(latest, [path]),
            "redis_vectors": dg.MetadataValue.int(pushed),
            "stale_tickers": dg.MetadataValue.json(stale),
            "tickers_without_vector": dg.MetadataValue.int(len(unserved)),
            "without_vector": dg.MetadataValue.md(unserved.head(20).to_markdown(index=False) if len(unserved) else "-"),
            "feature_set_versions": dg.MetadataValue.json(versions),
            "alternative_features": alt_note
            or f"joined: {int(latest[MASKS].sum(axis=1).gt(0).sum())} tickers covered by at least one family",
        }
    )


def recent_rows(lake: LakeResource, days: list[pd.Timestamp]) -> pd.DataFrame:
    """The feature rows of `days` that can still matter for a ticker's vector: newest day first, a day's rows kept
    only for tickers without a complete row on a newer day (one day in memory at a time, not the 14 days' rows of
    every ticker: +540 MB at 10,000 tickers)."""
    kept, served = [], set()
    for day in sorted(days, reverse=True):
        rows = lake.read_range("features", "features", day, day)
        rows = rows[~rows["ticker"].isin(served)]
        served.update(rows.dropna(subset=REQUIRED_FEATURES)["ticker"])
        kept.append(rows)
    present = [k for k in kept if len(k)]
    return pd.concat(present, ignore_index=True) if present else (kept[0] if kept else pd.DataFrame())


def without_vector(recent: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """The tickers of `recent` feature rows that get no online vector, with their newest row's date and the
    required features NaN in it (each of their rows lacks one: warming up after a listing or a gap)."""
    rows = recent[~recent["ticker"].isin(latest["ticker"])]
    if rows.empty:
        return pd.DataFrame(columns=["ticker", "newest_row", "missing"])
    newest = rows.sort_values("date").groupby("ticker").tail(1).sort_values("ticker")
    missing = newest[REQUIRED_FEATURES].isna()
    return pd.DataFrame(
        {
            "ticker": newest["ticker"].to_numpy(),
            "newest_row": newest["date"].dt.strftime("%Y-%m-%d").to_numpy(),
            "missing": [", ".join(missing.columns[m][:4]) for m in missing.to_numpy()],
        }
    )


def library_last(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the library's columns moved to the end: the layout the stream writes too, so that a vector
    without them (the stream's while it does not compute them) is the layout's first columns."""
    return frame[[*(c for c in frame.columns if c not in LIBRARY_SET), *(c for c in LIBRARY_COLUMNS if c in frame)]]


def with_alternative_columns(lake: LakeResource, latest: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """`latest` with the ALT_COLUMNS of each ticker's alt_features row of the same date (NaN and masks 0 for a
    ticker without one) and the combined version; unchanged, with the reason, when the alt table does not hold
    the newest vectors' date (the service then refuses a champion trained on the alternative set)."""
    if latest.empty:
        return latest, "no vectors"
    newest = latest["date"].max()
    held = lake.lake().partition_dates(*ALT_TABLE)
    if newest not in held:
        return latest, f"features/alt_features has no partition for {newest:%Y-%m-%d}: technical vectors only"
    alt = lake.read_range(*ALT_TABLE, latest["date"].min(), newest)
    technical = [c for c in latest.columns if c not in ("feature_set_version", *ALT_COLUMNS)]
    try:
        joined = join_alternative(latest[technical], alt)
    except ValueError as exc:
        raise dg.Failure(f"cannot join alt_features onto the online vectors: {exc}") from exc
    joined["feature_set_version"] = [
        combined_version(v, ALT_FEATURE_SET_VERSION) for v in latest["feature_set_version"].astype(str)
    ]
    return joined, None


class BentoConfig(dg.Config):
    bentoml_home: str | None = Field(
        default=None, description="BentoML store to build into (default: $BENTOML_HOME, else ~/bentoml)"
    )
    bentofile: str = Field(default="bento/bentofile.yaml", description="Relative to the repository root")


@dg.asset(deps=["champion_model"], kinds={"bentoml"})
def bento(config: BentoConfig, mlflow_resource: MLflowResource) -> dg.MaterializeResult:
    """The Bento for the registry's champion: the service's code and requirements (CUDA torch), labelled with the
    champion it was built for; the service itself follows the `champion` alias at run time. Built offline."""
    name = mlflow_resource.registered_model
    version = champion_version(mlflow_resource.client(), name)
    if version is None:
        raise dg.Failure(f"{name} has no champion yet: materialize champion_model first")
    labels = {"champion_model": name, "champion_version": str(version.version), "champion_run_id": version.run_id}
    built = build_bento(labels, config.bentofile, config.bentoml_home)
    metadata = {
        "bento_tag": dg.MetadataValue.text(built.tag),
        "champion_version": dg.MetadataValue.text(str(version.version)),
        "champion_run_id": dg.MetadataValue.text(version.run_id),
        "build_seconds": dg.MetadataValue.float(round(built.seconds, 2)),
        "path": dg.MetadataValue.path(built.path),
    }
    return dg.MaterializeResult(metadata=metadata)
