"""Raw alternative data per source, one Parquet partition per trading day: news, social posts, EDGAR filings (with
their Form 4 insider transactions) and macro series.

A run fetches its window from the provider, validates every row (`stockpred_core.data.alternative_quality`) and
rewrites the window's partitions, so re-running a window replaces it. Rows that break a rule go to
`raw/quarantine_<table>` with their reason and original values; source rows the provider could not parse to
`raw/rejects_<table>`; both keep what earlier runs found. A subject (ticker, series) that fails is written to
`raw/dead_letter_<table>` for each session of the window and keeps the rows it had.

Tables: raw/news_<provider>, raw/social_<provider>, raw/filings_sec and raw/insider_sec, raw/macro_series.
"""

import dagster as dg
import pandas as pd

from stockpred_assets.alternative.reporting import fetch_metadata, quarantine_metadata, rows_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import alternative as alt
from stockpred_core.data import calendar
from stockpred_core.data.alternative_quality import empty_quarantine, keep_quarantine, validate_alt
from stockpred_core.data.ingestion import keep_rejects
from stockpred_core.data.schemas import REJECT_COLUMNS, empty_frame
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import (
    AltDataProvider,
    FilingsProvider,
    MacroProvider,
    NewsApiProvider,
    NewsFilesProvider,
    SocialFilesProvider,
    TwitterProvider,
)

GROUP = "alternative"
RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# the asset's name -> the raw tables it writes, by kind (what alt_features reads)
TABLES = {
    "raw_news_files": {"news": "news_files"},
    "raw_news_newsapi": {"news": "news_newsapi"},
    "raw_social_files": {"social": "social_files"},
    "raw_social_twitter": {"social": "social_twitter"},
    "raw_filings_sec": {"filings": "filings_sec", "insider": "insider_sec"},
    "macro_series": {"macro": "macro_series"},
}


def keep_earlier(existing: pd.DataFrame, fresh: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The window's rows: the fresh ones, and every earlier row the fresh fetch does not hold again (by the table's
    key; a row fetched again replaces its earlier copy). Items do not vanish from a source, so whatever made this
    fetch hold less than an earlier one (a failed subject, a page cap, a Form 4 that could not be read this time)
    never deletes the rows the earlier run stored."""
    parts = [f for f in (existing, fresh) if len(f)]
    if len(parts) < 2:
        return fresh if len(fresh) or not len(existing) else existing[fresh.columns]
    both = pd.concat([existing[fresh.columns], fresh], ignore_index=True)
    return both.drop_duplicates(alt.KEYS[kind], keep="last").reset_index(drop=True)


def _keep_table(lake: LakeResource, table: str, new: pd.DataFrame, merge, empty: pd.DataFrame) -> str:
    """Append this run's rows to an unpartitioned table kept across runs (quarantine, rejects)."""
    try:
        earlier = lake.read_table("raw", table)
    except FileNotFoundError:
        earlier = empty
    return lake.write_table("raw", table, merge(earlier, new))


def ingest_alt(
    context: dg.AssetExecutionContext, provider: AltDataProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Fetch the window, validate, rewrite the window's partitions of each table; never raise for a bad subject."""
    days = partition_days(context)
    sessions = calendar.sessions(days[0], days[-1])
    tables = TABLES[context.asset_key.path[-1]]
    report = provider.fetch(days[0], days[-1])
    metadata: dict = {"provider": provider.name}
    for kind, table in tables.items():
        checked = validate_alt(kind, report.rows[kind], days[0], days[-1])
        existing = lake.read_range("raw", table, days[0], days[-1])
        rows = keep_earlier(existing, checked.valid, kind)
        metadata[f"{kind}_rows_kept_from_earlier_runs"] = dg.MetadataValue.int(len(rows) - len(checked.valid))
        paths = lake.write_partitions("raw", table, rows, days)
        path = _keep_table(lake, f"quarantine_{table}", checked.quarantined, keep_quarantine, empty_quarantine(kind))
        prefix = "" if kind == provider.KIND else f"{kind}_"
        metadata |= rows_metadata(kind, rows, paths, sessions, provider.subjects(), prefix)
        metadata |= quarantine_metadata(checked, path, prefix)
        if len(checked.quarantined):
            first, count = checked.quarantined.iloc[0], len(checked.quarantined)
            context.log.warning(f"{table}: {count} row(s) quarantined in {path} (first: {first.rule}: {first.reason})")
    main = tables[provider.KIND]
    # One dead-letter row per failed subject and session of the window, so each partition says what it lacks.
    dead_letter = report.failures.merge(pd.DataFrame({"date": sessions}), how="cross")
    lake.write_partitions("raw", f"dead_letter_{main}", dead_letter, days)
    for failure in report.failures.itertuples():
        context.log.warning(f"{main}: {failure.ticker} failed ({failure.kind}): {failure.reason}")
    rejects_path = _keep_table(lake, f"rejects_{main}", report.rejects, keep_rejects, empty_frame(REJECT_COLUMNS))
    for note in report.notes:
        context.log.warning(f"{main}: {note}")
    return dg.MaterializeResult(metadata={**metadata, **fetch_metadata(report, rejects_path)})


ASSET_ARGS = dict(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas", "parquet"},
    retry_policy=RETRY,
    group_name=GROUP,
)


@dg.asset(**ASSET_ARGS)
def raw_news_files(
    context: dg.AssetExecutionContext, news_files_provider: NewsFilesProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """News items per ticker from recorded files (daily vendor sentiment, headlines), by the session they count for."""
    return ingest_alt(context, news_files_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_news_newsapi(
    context: dg.AssetExecutionContext, news_newsapi_provider: NewsApiProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """News articles per ticker from a NewsAPI-style service, by the session they count for."""
    return ingest_alt(context, news_newsapi_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_social_files(
    context: dg.AssetExecutionContext, social_files_provider: SocialFilesProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Posts per cashtag from recorded files (the stocknet tweets), by the session they count for."""
    return ingest_alt(context, social_files_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_social_twitter(
    context: dg.AssetExecutionContext, social_twitter_provider: TwitterProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Posts per cashtag from a Twitter-style recent-search API, by the session they count for."""
    return ingest_alt(context, social_twitter_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_filings_sec(
    context: dg.AssetExecutionContext, filings_provider: FilingsProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """EDGAR filings (8-K, 10-Q, 10-K, Form 4, ...) and Form 4 insider transactions, by EDGAR acceptance time."""
    return ingest_alt(context, filings_provider, lake)


@dg.asset(**ASSET_ARGS)
def macro_series(
    context: dg.AssetExecutionContext, macro_provider: MacroProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Macroeconomic series (VIX, 10y yield, TED spread, CPI, unemployment) dated by when each value was published."""
    return ingest_alt(context, macro_provider, lake)


# (family, provider name) -> the asset that ingests it
RAW_ASSETS = {
    ("news", "files"): raw_news_files,
    ("news", "newsapi"): raw_news_newsapi,
    ("social", "files"): raw_social_files,
    ("social", "twitter"): raw_social_twitter,
    ("filings", "sec"): raw_filings_sec,
    ("filings", "sec_files"): raw_filings_sec,
    ("macro", "fred"): macro_series,
    ("macro", "fred_files"): macro_series,
}
