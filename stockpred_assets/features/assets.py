"""The feature table: indicators per (date, ticker), computed with a declared look-back of bars, or, for the
sessions after a stored state, from that state at the cost of the day's bars (`stockpred_core/features/daily.py`)."""

import time

import dagster as dg
import pandas as pd

from stockpred_assets.metadata import table_metadata
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
# a longer one (a backfill) is computed column-wise over its whole range, which costs less per session there.
STEPWISE_MAX_SESSIONS = 5


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
    began = time.perf_counter()
    market = market_context(lake, market_data)
    sessions = calendar.sessions(days[0], days[-1])
    history_start = calendar.lookback_start(days[0], LOOKBACK_SESSIONS)
    events = lake.read_range("validated", "events", history_start, days[-1])
    state = load_state(context, lake, days[0], market)
    if state is None and len(sessions) > STEPWISE_MAX_SESSIONS:
        bars = adjust(lake.read_range("validated", "bars", history_start, days[-1]), events)
        table = compute_features(bars, market, since=days[0])
        state = state_from_bars(bars, events, market) if len(bars) else None
        del bars
        how = {"computed": "column-wise over the look-back and the range", "rebuilt_tickers": 0}
    else:
        table, how = stepwise(lake, sessions, state, events, market)
        state = how.pop("state")
    paths = lake.write_partitions("features", "features", table, days)
    if state is not None and len(sessions):  # after the rows: a failed write leaves the previous state in force
        lake.lake().write_state(*STATE_TABLE, sessions[-1], state.dumps(), keep=STATES_KEPT)
    how["seconds"] = round(time.perf_counter() - began, 2)
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
            **how,
            "nan_share_by_feature": dg.MetadataValue.json(table[FEATURE_COLUMNS].isna().mean().round(4).to_dict()),
            "duckdb_views": "features, bars",
            "preview": dg.MetadataValue.md(
                complete[["date", "ticker", *FEATURE_COLUMNS[:8]]].tail(5).round(4).to_markdown(index=False)
                if len(complete)
                else "-"
            ),
        }
    )


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
    lake: LakeResource, sessions: pd.DatetimeIndex, state: DailyState | None, events: pd.DataFrame, market
) -> tuple[pd.DataFrame, dict]:
    """Session by session from `state` (the look-back replayed first when there is none)."""
    store = lake.lake()

    def read(start, end, tickers):
        return store.read_range("validated", "bars", start, end, tickers=tickers)

    parts, carried, rebuilt = [], 0, 0
    for day in sessions:
        rows, state, report = increment(state, day, read, events, market, lookback=LOOKBACK_SESSIONS)
        parts.append(rows)
        carried += report["carried"]
        rebuilt += len(report["rebuilt"])
    table = pd.concat(parts, ignore_index=True) if parts else compute_features(pd.DataFrame(), market)
    computed = "from the stored state" if carried == len(sessions) else "from the look-back, then from the state"
    return table, {"computed": computed, "rebuilt_tickers": rebuilt, "state": state}
