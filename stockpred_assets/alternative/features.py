"""The alternative feature set per (date, ticker) of the feature table: news and social sentiment and volume, filing
events, insider buying and the macro context, each item counted only from the session it was public before the
close of (the raw tables' `date`), with a coverage mask per family."""

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_assets.alternative.ingestion import GROUP, RAW_ASSETS, TABLES
from stockpred_assets.alternative.plots import sentiment_return_figure, sentiment_return_quintiles
from stockpred_assets.alternative.sentiment import champion_sentiment, score_texts
from stockpred_assets.metadata import frame_table, png_markdown, table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.features.alternative import ALT_LOOKBACK_SESSIONS, AltItems, compute_alt_features
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION, FAMILIES
from stockpred_resources.lake import LakeResource
from stockpred_resources.tracking import MLflowResource

# The look-back in weekday partitions: sessions plus room for the holidays among them.
LOOKBACK_PARTITIONS = ALT_LOOKBACK_SESSIONS + ALT_LOOKBACK_SESSIONS // 20 + 5
TEXT_FAMILIES = ("news", "social")


def raw_asset_names(sources: dict[str, list[str]]) -> list[str]:
    """The raw assets of the configured sources (family -> provider names), in family order."""
    names = [RAW_ASSETS[(family, provider)].key.path[-1] for family in FAMILIES for provider in sources.get(family, [])]
    return list(dict.fromkeys(names))


def _read_family(
    lake: LakeResource, assets: list[str], kind: str, start: pd.Timestamp, days: list[pd.Timestamp]
) -> tuple[pd.DataFrame, int]:
    """Rows of `kind` from the assets' tables in [start, last day] and the look-back sessions none of them holds;
    the window's own partitions must exist."""
    frames, missing = [], set(calendar.sessions(start, days[0] - pd.Timedelta(days=1)))
    for asset in assets:
        table = TABLES[asset][kind]
        lake.require_partitions("raw", table, days)
        frames.append(lake.read_range("raw", table, start, days[-1]))
        missing -= set(lake.lake().partition_dates("raw", table))
    present = [f for f in frames if len(f)]
    rows = pd.concat(present, ignore_index=True) if present else frames[0]
    return rows, len(missing)


def _score(context, items: dict[str, pd.DataFrame], mlflow_resource: MLflowResource) -> str:
    """Add `sentiment` to news (the vendor's score where it gave one, else the model's) and posts (the model's);
    returns the model version used."""
    todo = {}
    if "news" in items:
        news = items["news"]
        todo["news"] = (news["headline"].fillna("").astype(str) + ". " + news["body"].fillna("").astype(str)).where(
            pd.to_numeric(news["vendor_sentiment"], errors="coerce").isna()
        )
    if "social" in items:
        todo["social"] = items["social"]["text"]
    texts = sum(int(t.notna().sum()) for t in todo.values())
    model, version = champion_sentiment(mlflow_resource) if texts else (None, "not needed")
    for family, text in todo.items():
        frame = items[family]
        vendor = frame["vendor_sentiment"] if "vendor_sentiment" in frame else pd.Series(np.nan, index=frame.index)
        sentiment = pd.to_numeric(vendor, errors="coerce").to_numpy(dtype=float, copy=True)
        wanted = text.notna().to_numpy()
        if wanted.any():
            sentiment[wanted] = score_texts(model, text[wanted])
        items[family] = frame.assign(sentiment=sentiment)
    if texts:
        context.log.info(f"scored {texts} texts with the sentiment model v{version}")
    return version


def _coverage(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for family in FAMILIES:
        mask = table[f"{family}_covered"].fillna(0) > 0
        rows.append({"family": family, "covered_cells": int(mask.sum()), "rows": len(table),
                     "share": float(mask.mean()) if len(table) else 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def compute_window(
    context: dg.AssetExecutionContext, lake: LakeResource, mlflow_resource: MLflowResource, sources: dict
) -> dg.MaterializeResult:
    days = partition_days(context)
    lake.require_partitions("features", "features", days)
    grid = lake.read_range("features", "features", days[0], days[-1], columns=["date", "ticker"])
    start = calendar.lookback_start(days[0], ALT_LOOKBACK_SESSIONS)
    items, missing = {}, {}
    for family in FAMILIES:
        assets = raw_asset_names({family: sources.get(family, [])})
        for kind in ("filings", "insider") if family == "filings" else (family,):
            if assets:
                items[kind], missing[kind] = _read_family(lake, assets, kind, start, days)
    version = _score(context, items, mlflow_resource) if set(items) & set(TEXT_FAMILIES) else "not needed"
    table = compute_alt_features(grid, AltItems(**{kind: items.get(kind) for kind in AltItems.__dataclass_fields__}))
    # which scorer made the sentiment columns: training tells when a window mixes the scores of two versions
    table["sentiment_model_version"] = str(version)
    paths = lake.write_partitions("features", "alt_features", table, days)
    for kind, count in missing.items():
        if count:
            context.log.warning(f"{kind}: {count} look-back session(s) before {days[0]:%Y-%m-%d} hold no raw partition")
    bars = lake.read_range(
        "validated", "bars", days[0], calendar.add_sessions(days[-1], 1), ["date", "ticker", "adj_close"]
    )
    quintiles = sentiment_return_quintiles(table, bars)
    coverage = _coverage(table)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table, paths),
            "alt_feature_set_version": ALT_FEATURE_SET_VERSION,
            "sources": dg.MetadataValue.json(sources),
            "sentiment_model_version": version,
            "coverage": frame_table(coverage),
            **{
                f"{row.family}_coverage_share": dg.MetadataValue.float(round(row.share, 4))
                for row in coverage.itertuples()
            },
            "lookback_sessions_missing": dg.MetadataValue.json(missing),
            "nan_share_by_feature": dg.MetadataValue.json(table[ALT_COLUMNS].isna().mean().round(4).to_dict()),
            "sentiment_vs_next_return": frame_table(quintiles),
            "sentiment_vs_returns_plot": png_markdown(sentiment_return_figure(quintiles)),
        }
    )


def build_alt_features(sources: dict[str, list[str]]) -> dg.AssetsDefinition:
    """alt_features over the configured sources (family -> provider names; a family without one has no source: its
    columns are NaN and its mask 0)."""
    lookback = dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_PARTITIONS)
    deps = [
        dg.AssetDep("features"),
        *[dg.AssetDep(name, partition_mapping=lookback) for name in raw_asset_names(sources)],
    ]
    if set(sources) & set(TEXT_FAMILIES):
        deps.append(dg.AssetDep("sentiment_model"))
    fixed = {family: list(sources.get(family, [])) for family in FAMILIES if sources.get(family)}

    @dg.asset(
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=deps,
        kinds={"pandas", "parquet"},
        group_name=GROUP,
    )
    def alt_features(
        context: dg.AssetExecutionContext, lake: LakeResource, mlflow_resource: MLflowResource
    ) -> dg.MaterializeResult:
        """News/social sentiment and volume, filing events, insider buying, macro context per (date, ticker), point
        in time, with a coverage mask per family; joins the feature table as its own versioned feature set."""
        return compute_window(context, lake, mlflow_resource, fixed)

    return alt_features
