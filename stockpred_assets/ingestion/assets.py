"""Raw bars per provider, one Parquet partition per trading day, plus events and a dead-letter table.

A run fetches only the tickers missing from (or stale in) its window, with one request per ticker for the whole
window, and rewrites the window's partitions with the kept and the fresh rows. A ticker that fails is written to
`raw/dead_letter_<provider>` with its reason and is fetched again by the next run over that window.
"""

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_assets.metadata import table_metadata
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.data.dates import local_days
from stockpred_core.data.ingestion import combine, keep_rejects, off_calendar, tickers_to_fetch
from stockpred_core.data.schemas import EVENT_COLUMNS, FAILURE_COLUMNS, RAW_BAR_COLUMNS, REJECT_COLUMNS, empty_frame
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import (
    AlphaVantageProvider,
    FilesProvider,
    MarketDataProvider,
    SimulatedProvider,
    YahooProvider,
)

RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class IngestConfig(dg.Config):
    refetch: bool = False  # fetch every ticker again instead of only the missing or stale ones
    max_age_days: float | None = None  # also refetch bars ingested longer ago than this


def ingest(
    context: dg.AssetExecutionContext, config: IngestConfig, provider: MarketDataProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Fetch what the window lacks, keep the rest, rewrite the window's partitions; never raise for a bad ticker."""
    days = partition_days(context)
    sessions = calendar.sessions(days[0], days[-1])
    provider.set_window(days[0], days[-1])
    name, universe = provider.name, provider.universe()
    existing = lake.read_range("raw", f"bars_{name}", days[0], days[-1])
    existing_events = lake.read_range("raw", f"events_{name}", days[0], days[-1])
    max_age = pd.Timedelta(days=config.max_age_days) if config.max_age_days is not None else None
    wanted = tickers_to_fetch(universe, sessions, existing, config.refetch, max_age)
    report = provider.fetch_bars(sessions[0], sessions[-1], wanted) if wanted else None
    fetched_ok = set(wanted) - set(report.failures["ticker"]) if report else set()

    bars = combine(existing, report.bars if report else None, fetched_ok, sessions, universe, RAW_BAR_COLUMNS)
    events = combine(existing_events, report.events if report else None, fetched_ok, sessions, universe, EVENT_COLUMNS)
    failures = report.failures if report else empty_frame(FAILURE_COLUMNS)
    # One dead-letter row per failed ticker and session of the window, so each partition says what it lacks.
    dead_letter = failures.merge(pd.DataFrame({"date": sessions}), how="cross")
    paths = lake.write_partitions("raw", f"bars_{name}", bars, days)
    lake.write_partitions("raw", f"events_{name}", events, days)
    lake.write_partitions("raw", f"dead_letter_{name}", dead_letter, days)
    sectors = provider.sectors()
    if sectors:  # merged into what earlier runs recorded: a run over a window knows that window's tickers only
        fresh = pd.DataFrame(sectors.items(), columns=["ticker", "sector"])
        lake.lake().update_table("reference", f"sectors_{name}", lambda old: merge_sectors(old, fresh))
    for failure in failures.itertuples():
        context.log.warning(f"{name}: {failure.ticker} failed ({failure.kind}): {failure.reason}")
    found = [f for f in (provider.rejects(), off_calendar(report.bars if report else None, sessions)) if len(f)]
    rejects = pd.concat(found, ignore_index=True) if found else empty_frame(REJECT_COLUMNS)
    metadata = {**table_metadata(bars, paths), **fetch_metadata(name, wanted, report)}
    fetched = len(report.bars[report.bars["date"].isin(sessions)]) if report else 0
    counts = row_counts(provider, rejects, fetched, days[0], days[-1])
    return dg.MaterializeResult(metadata={**metadata, **counts, **record_rejects(context, provider, lake, rejects)})


def merge_sectors(earlier: pd.DataFrame | None, fresh: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's sector: this run's where it has one, else the one recorded before."""
    if earlier is None or earlier.empty:
        return fresh.sort_values("ticker", ignore_index=True)
    kept = earlier[~earlier["ticker"].isin(fresh["ticker"])]
    return pd.concat([kept, fresh], ignore_index=True).sort_values("ticker", ignore_index=True)


def row_counts(
    provider: MarketDataProvider, rejects: pd.DataFrame, fetched: int, start: pd.Timestamp, end: pd.Timestamp
) -> dict:
    """What the source held and what was rejected, for the whole source and for this run's window: in the window,
    `window_rows_read` = the rows the raw partitions took (validated_bars' rows_in) + `window_rows_rejected`."""
    # a rejected row's date is its text, naive or with an offset ("2022-06-03 00:00:00+00:00"): its local day
    dated = local_days(rejects["date"]) if len(rejects) else pd.Series([], dtype="datetime64[ns]")
    in_window = int(dated.between(start, end).sum())
    loaded, loaded_in_window = provider.rows_loaded(), provider.rows_loaded(start, end)
    return {
        "rows_read": (loaded if loaded is not None else fetched) + len(rejects),
        "rows_rejected": len(rejects),
        "window_rows_read": (loaded_in_window if loaded_in_window is not None else fetched) + in_window,
        "window_rows_rejected": in_window,
        "rows_rejected_undated": int(dated.isna().sum()),  # no readable date: no window holds them
    }


def record_rejects(
    context: dg.AssetExecutionContext, provider: MarketDataProvider, lake: LakeResource, rejects: pd.DataFrame
) -> dict:
    """Keep the rows the raw layer cannot hold in `raw/rejects_<provider>` and warn about them."""
    table = f"rejects_{provider.name}"
    path = lake.lake().update_table(
        "raw", table, lambda earlier: keep_rejects(empty_frame(REJECT_COLUMNS) if earlier is None else earlier, rejects)
    )
    for note in provider.notes():
        context.log.warning(f"{provider.name}: {note}")
    if len(rejects):
        first = rejects.iloc[0]
        context.log.warning(
            f"{provider.name}: {len(rejects)} source row(s) rejected, kept in {path} (first: {first.raw!r}: "
            f"{first.reason})"
        )
    return {
        "rejects_path": path,
        "rejects": dg.MetadataValue.md(
            rejects[["source", "date", "reason"]].head(20).to_markdown(index=False) if len(rejects) else "none"
        ),
        "notes": dg.MetadataValue.json(provider.notes()),
    }


def fetch_metadata(name: str, wanted: list[str], report) -> dict:
    latency = np.array(list(report.latency_s.values())) if report and report.latency_s else np.array([0.0])
    failures = report.failures if report else pd.DataFrame(columns=["ticker", "kind", "reason"])
    return {
        "provider": name,
        "tickers_fetched": len(wanted),
        "requests": report.requests if report else 0,
        "failed_tickers": len(failures),
        "failures": dg.MetadataValue.md(
            failures[["ticker", "kind", "reason"]].to_markdown(index=False) if len(failures) else "none"
        ),
        "events": len(report.events) if report else 0,
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_max_s": float(latency.max()),
    }


ASSET_ARGS = dict(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pandas", "parquet"},
    retry_policy=RETRY,
)


@dg.asset(**ASSET_ARGS)
def raw_bars_simulated(
    context: dg.AssetExecutionContext, config: IngestConfig, simulated_provider: SimulatedProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Daily bars and corporate actions from the simulated market (offline, deterministic)."""
    return ingest(context, config, simulated_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_bars_yahoo(
    context: dg.AssetExecutionContext, config: IngestConfig, yahoo_provider: YahooProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Daily bars, splits and dividends from Yahoo Finance's v8 chart API."""
    return ingest(context, config, yahoo_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_bars_alphavantage(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    alphavantage_provider: AlphaVantageProvider,
    lake: LakeResource,
) -> dg.MaterializeResult:
    """Daily bars from Alpha Vantage (TIME_SERIES_DAILY or _ADJUSTED), within its request quota."""
    return ingest(context, config, alphavantage_provider, lake)


@dg.asset(**ASSET_ARGS)
def raw_bars_files(
    context: dg.AssetExecutionContext, config: IngestConfig, files_provider: FilesProvider, lake: LakeResource
) -> dg.MaterializeResult:
    """Daily bars from CSV/Parquet files the user already has."""
    return ingest(context, config, files_provider, lake)
