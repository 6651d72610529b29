"""The feature table: indicators per (date, ticker), computed with a declared look-back of bars, or, for the
sessions after a stored state, from that state at the cost of the day's bars (`stockpred_core/features/daily.py`)."""

import time

import dagster as dg
import pandas as pd

from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.features.batch import FEATURE_COLUMNS, LOOKBACK_SESSIONS, MarketContext, compute_features
from stockpred_core.features.catalog import FEATURE_SET_VERSION, LIBRARY_COLUMNS, registry_frame
from stockpred_core.features.daily import DailyState, increment, state_from_bars
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource

# The look-back in weekday partitions: sessions plus room for the holidays among them.
LOOKBACK_PARTITIONS = LOOKBACK_SESSIONS + LOOKBACK_SESSIONS // 20 + 5
STATE_TABLE = ("features", "state")  # the state after a session, one file per session
STATES_KEPT = 5  # the newest few (~5 KB per ticker each): a rerun of one of the last days starts from its eve;
# a state is used only if no validated partition of its look-back was written after it (`load_state`)
# Without a stored state, a run of up to this many sessions goes session by session after one look-back replay;
# a longer one (a backfill) is computed column-wise over its whole range, which costs less per session there, when
# it fits the run's memory budget: column-wise holds ~220 (sessions x tickers) frames, about 6 KB per bar of the
# look-back and the range (the S&P 500 file's 619,040 bars peaked at 3.7 GB), so 10,000 tickers x 750 sessions would
# need ~45 GB. Session by session holds the state and one day (~5 KB per ticker).
STEPWISE_MAX_SESSIONS = 5
BYTES_PER_BAR = 6_000


class FeaturesConfig(dg.Config):
    memory_budget_gb: float = 4.0  # a backfill goes column-wise only when its estimated peak fits (run pods: 8 GiB)


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
    context: dg.AssetExecutionContext,
    config: FeaturesConfig,
    lake: LakeResource,
    duckdb: DuckDBResource,
    market_data: MarketDataResource,
) -> dg.MaterializeResult:
    """Technical indicators, statistics and market context, and the Alpha158-like library (`a158_*`, the inputs of
    recipes that name `alpha158`); a value for day D uses bars up to D only."""
    days = partition_days(context)
    lake.require_partitions("validated", "bars", days)
    began, inputs_read_at = time.perf_counter(), time.time()  # a state is as old as the inputs it was built from
    market = market_context(lake, market_data)
    sessions = calendar.sessions(days[0], days[-1])
    history_start = calendar.lookback_start(days[0], LOOKBACK_SESSIONS)
    events = lake.read_range("validated", "events", history_start, days[-1])
    state = load_state(context, lake, days[0], market)
    columnwise = state is None and len(sessions) > STEPWISE_MAX_SESSIONS
    ends = [sessions[0], sessions[-1]] if len(sessions) else [days[0]]
    estimate = estimated_peak_gb(lake, ends, len(calendar.sessions(history_start, days[-1])))
    if columnwise and estimate > config.memory_budget_gb:
        context.log.info(
            f"column-wise over {len(sessions)} sessions would need ~{estimate:.1f} GB (memory_budget_gb "
            f"{config.memory_budget_gb:g}): computing session by session"
        )
        columnwise = False
    if columnwise:
        bars = adjust(lake.read_range("validated", "bars", history_start, days[-1]), events)
        table = compute_features(bars, market, since=days[0])
        state = state_from_bars(bars, events, market) if len(bars) else None
        del bars
        paths = lake.write_partitions("features", "features", table, days)
        summary = Summary()
        summary.add(table)
        how = {"computed": "column-wise over the look-back and the range", "rebuilt_tickers": 0}
    else:
        paths, summary, state, how = stepwise(lake, days, sessions, state, events, market)
    if state is not None and len(sessions):  # after the rows: a failed write leaves the previous state in force
        state.saved_at = inputs_read_at
        lake.lake().write_state(*STATE_TABLE, sessions[-1], state.dumps(), keep=STATES_KEPT)
    how["seconds"] = round(time.perf_counter() - began, 2)
    lake.write_table("features", "registry", registry_frame())
    store = lake.lake()
    for view, (layer, name) in {"features": ("features", "features"), "bars": ("validated", "bars")}.items():
        duckdb.register_view(store, layer, name, view=view)
    return dg.MaterializeResult(
        metadata={
            **summary.metadata(paths),
            "feature_set_version": FEATURE_SET_VERSION,
            "feature_columns": dg.MetadataValue.json(FEATURE_COLUMNS),
            "library_columns": dg.MetadataValue.int(len(LIBRARY_COLUMNS)),
            **how,
            "duckdb_views": "features, bars",
        }
    )


class Summary:
    """What the materialization reports of the rows written, gathered a session at a time (a long run written
    session by session never holds all its rows)."""

    def __init__(self) -> None:
        self.rows = self.complete = 0
        self.tickers: set[str] = set()
        self.first = self.last = None
        self.missing = pd.Series(0, index=FEATURE_COLUMNS, dtype="int64")
        self.preview = pd.DataFrame()

    def add(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        dates = pd.to_datetime(rows["date"])
        self.first = min(d for d in (self.first, dates.min()) if d is not None)
        self.last = max(d for d in (self.last, dates.max()) if d is not None)
        self.rows += len(rows)
        self.tickers.update(rows["ticker"].unique())
        self.missing += rows[FEATURE_COLUMNS].isna().sum()
        complete = rows.dropna(subset=FEATURE_COLUMNS)
        self.complete += len(complete)
        if len(complete):
            self.preview = complete[["date", "ticker", *FEATURE_COLUMNS[:8]]].tail(5)

    def metadata(self, paths: list[str]) -> dict:
        meta = {
            "dagster/row_count": dg.MetadataValue.int(self.rows),
            "tickers": dg.MetadataValue.int(len(self.tickers)),
            "first_date": dg.MetadataValue.text(f"{self.first:%Y-%m-%d}" if self.rows else "-"),
            "last_date": dg.MetadataValue.text(f"{self.last:%Y-%m-%d}" if self.rows else "-"),
            "partitions_written": dg.MetadataValue.int(len(paths)),
            "complete_rows": dg.MetadataValue.int(self.complete),
            "nan_share_by_feature": dg.MetadataValue.json(
                (self.missing / max(self.rows, 1)).round(4).to_dict() if self.rows else {}
            ),
            "preview": dg.MetadataValue.md(
                self.preview.round(4).to_markdown(index=False) if len(self.preview) else "-"
            ),
        }
        if paths:
            meta["path"] = dg.MetadataValue.path(paths[-1].rsplit("/", 2)[0])
        return meta


def estimated_peak_gb(lake: LakeResource, days: list[pd.Timestamp], sessions: int) -> float:
    """The column-wise computation's peak for `sessions` sessions of look-back and range, from the larger bar count
    of the range's first and last session (Parquet footers) at BYTES_PER_BAR."""
    bars = max(lake.lake().row_count("validated", "bars", day) for day in days)
    return bars * sessions * BYTES_PER_BAR / 1e9


def load_state(
    context: dg.AssetExecutionContext, lake: LakeResource, first_day: pd.Timestamp, market: MarketContext
) -> DailyState | None:
    """The state stored after the session before `first_day`, or None (none stored, or of another format)."""
    previous = calendar.previous_sessions(first_day, 1)
    data = lake.lake().read_state(*STATE_TABLE, previous[0]) if len(previous) else None
    if data is None:
        return None
    try:
        state = DailyState.loads(data, market)
    except (ValueError, KeyError) as error:
        context.log.warning(f"the stored feature state of {previous[0]:%Y-%m-%d} is not usable ({error}): rebuilding")
        return None
    # Inputs rewritten after the state was saved (a corrected day re-validated) make it stale: rebuild from them.
    start, store = calendar.lookback_start(first_day, LOOKBACK_SESSIONS), lake.lake()
    rewritten = [
        day
        for table in ("bars", "events")
        for day in store.written_since("validated", table, start, state.last_date, state.saved_at)
    ]
    if rewritten:
        context.log.info(
            f"validated data of {len(rewritten)} session(s) from {min(rewritten):%Y-%m-%d} was rewritten after the "
            f"feature state of {previous[0]:%Y-%m-%d} was saved: rebuilding it from the look-back"
        )
        return None
    return state


def stepwise(
    lake: LakeResource,
    days: list[pd.Timestamp],
    sessions: pd.DatetimeIndex,
    state: DailyState | None,
    events: pd.DataFrame,
    market,
) -> tuple[list[str], Summary, DailyState | None, dict]:
    """Session by session from `state` (the look-back replayed first when there is none), each session's partition
    written as it is computed; the run's other weekdays (holidays) get empty partitions."""
    store = lake.lake()

    def read(start, end, tickers):
        return store.read_range("validated", "bars", start, end, tickers=tickers)

    paths, summary, carried, rebuilt, schema = [], Summary(), 0, 0, None
    for day in sessions:
        rows, state, report = increment(state, day, read, events, market, lookback=LOOKBACK_SESSIONS)
        paths += lake.write_partitions("features", "features", rows, [day])
        summary.add(rows)
        schema = rows.iloc[:0] if len(rows) else schema
        carried += report["carried"]
        rebuilt += len(report["rebuilt"])
    others = [d for d in days if d not in set(sessions)]
    if others:
        empty = schema if schema is not None else compute_features(pd.DataFrame(), market)
        paths += lake.write_partitions("features", "features", empty, others)
    if not len(sessions):
        computed = "no session in the range"
    elif carried == len(sessions):
        computed = "from the stored state"
    else:
        computed = "from the look-back, then from the state"
    return sorted(paths), summary, state, {"computed": computed, "rebuilt_tickers": rebuilt}
