"""No train/serve skew: the `features` row of day D is the same whether a backfill over years computed it (what models
train on) or a daily run of partition D alone (what they are served), on the real S&P 500 file through the assets."""

import dagster as dg
import pandas as pd
import pytest
from support.env import environment, local_env

from stockpred_assets.definitions import build_definitions
from stockpred_assets.features import assets as features_assets
from stockpred_core.data import calendar
from stockpred_core.features.batch import LOOKBACK_SESSIONS
from stockpred_core.features.catalog import MODEL_INPUTS
from stockpred_core.io.lake import Lake
from stockpred_core.settings import load_settings

pytestmark = pytest.mark.slow

FIRST, LAST = "2013-02-08", "2015-06-30"  # the file's first session; ~600 sessions in all
LONG_HISTORY = ["2015-03-31", "2015-05-29", LAST]  # more than LOOKBACK_SESSIONS sessions after FIRST
SHORT_HISTORY = ["2013-10-31", "2014-09-30"]  # fewer: a daily run reads the file's whole history too
DAYS = [*SHORT_HISTORY, *LONG_HISTORY]
CHUNKS = [("2015-04-01", "2015-04-30"), ("2015-05-01", "2015-05-29")]  # a backfill split into two runs
IN_A_ROW = [f"{d:%Y-%m-%d}" for d in calendar.sessions("2015-06-22", LAST)]  # daily runs, each after the one before
DATA = [dg.AssetKey(k) for k in ("raw_bars_files", "validated_bars", "features")]
RECURSIVE = ["rsi_14", "macd_pct", "macd_hist_pct", "ema_26_gap", "adx_14", "plus_di_14", "minus_di_14", "atr_pct"]
WINDOWED = ["ret_20", "volatility_20", "sma_50_gap", "bb_pctb", "cmf_20", "market_beta_60", "market_regime"]
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def platform(shared_data, tmp_path_factory):
    """One backfill run over FIRST..LAST of 21 tickers across the alphabet; yields the daily job, the instance, the
    lake and the backfill's feature rows of DAYS (read before any daily run rewrites those partitions)."""
    root = tmp_path_factory.mktemp("skew")
    market = shared_data / "market"
    raw = pd.read_csv(market / "all_stocks_5yr.csv.gz")
    tickers = sorted(raw["Name"].unique())[::25]
    raw[raw["Name"].isin(tickers) & raw["date"].between(FIRST, LAST)].to_csv(root / "sp500.csv", index=False)
    env = local_env(
        root,
        STOCKPRED_PROVIDERS="files",
        STOCKPRED_FILES_PATH=str(root / "sp500.csv"),
        STOCKPRED_INDEX_FILE=str(market / "GSPC.csv"),
        STOCKPRED_VIX_FILE=str(market / "VIX_History.csv"),
    )
    with environment(env):
        defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
        daily = defs.resolve_job_def("daily_data_job")
        span = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
        assert daily.execute_in_process(instance=instance, asset_selection=DATA, tags=span).success
        lake = Lake(load_settings().lake_url)
        backfilled = {day: lake.read_range("features", "features", day, day) for day in {*DAYS, *IN_A_ROW}}
        backfilled.update({chunk: lake.read_range("features", "features", *chunk) for chunk in CHUNKS})
        yield daily, instance, lake, backfilled


def run_day(platform, day: str, how: str | None = None) -> pd.DataFrame:
    """A daily run of `features` for partition `day` alone; the rows it wrote. `how`: what its metadata must say
    it computed from."""
    daily, instance, lake, _ = platform
    result = daily.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("features")], partition_key=day)
    assert result.success
    if how is not None:
        assert result.asset_materializations_for_node("features")[-1].metadata["computed"].value == how
    return lake.read_range("features", "features", day, day)


def differences(served: pd.DataFrame, trained: pd.DataFrame) -> pd.Series:
    """Largest |difference| per model-input feature over the day's tickers, once both have NaN in the same places."""
    a, b = (frame.set_index("ticker").sort_index()[MODEL_INPUTS] for frame in (served, trained))
    assert a.index.equals(b.index) and len(a) > 0
    pd.testing.assert_frame_equal(a.isna(), b.isna())
    return (a - b).abs().max()


def assert_chunk_serves_the_backfill(lake, backfilled, chunk) -> None:
    """Each day of `chunk` as written now equals the whole-range backfill's rows of that day (model inputs)."""
    got = lake.read_range("features", "features", *chunk)
    for day, rows in got.groupby("date"):
        expected = backfilled[chunk][backfilled[chunk]["date"] == day]
        worst = differences(rows, expected)
        assert (worst <= TOLERANCE).all(), (day, worst[worst > TOLERANCE].to_dict())


def test_the_chosen_days_read_a_cut_history_and_a_whole_one():
    sessions = {day: len(calendar.sessions(FIRST, day)) - 1 for day in DAYS}  # sessions of history before the day
    assert all(sessions[day] > LOOKBACK_SESSIONS for day in LONG_HISTORY)
    assert all(sessions[day] < LOOKBACK_SESSIONS for day in SHORT_HISTORY)


@pytest.mark.parametrize("day", DAYS)
def test_a_daily_run_serves_the_features_a_backfill_trained_on(platform, day):
    trained = platform[3][day]
    assert trained[RECURSIVE].notna().all().all()  # past every warm-up: the recursive features are compared
    worst = differences(run_day(platform, day), trained)
    assert (worst <= TOLERANCE).all(), worst[worst > TOLERANCE].to_dict()


def test_daily_runs_in_a_row_carry_the_state_and_serve_the_features_a_backfill_trained_on(platform):
    """The first run replays its look-back; each later one starts from the state the run before it stored."""
    for k, day in enumerate(IN_A_ROW):
        how = "from the stored state" if k else "from the look-back, then from the state"
        worst = differences(run_day(platform, day, how), platform[3][day])
        assert (worst <= TOLERANCE).all(), (day, worst[worst > TOLERANCE].to_dict())


def test_a_backfill_split_into_runs_computes_the_same_rows_in_either_order(platform):
    """The scale-out path's runs (docs/scaling.md): each chunk reads its own look-back (or the state before it) and
    writes only its own partitions, so the later chunk may run first."""
    daily, instance, lake, backfilled = platform
    for first, last in reversed(CHUNKS):
        span = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        assert daily.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("features")], tags=span).success
    for chunk in CHUNKS:
        assert_chunk_serves_the_backfill(lake, backfilled, chunk)


def test_a_backfill_beyond_its_memory_budget_goes_session_by_session(platform):
    """Column-wise holds ~6 KB per bar of look-back and range: past `memory_budget_gb` the run computes session by
    session (its state and one day in memory) and writes the same rows."""
    daily, instance, lake, backfilled = platform
    lake.fs.rm(lake.table_path(*features_assets.STATE_TABLE), recursive=True)
    chunk = CHUNKS[0]
    span = {"dagster/asset_partition_range_start": chunk[0], "dagster/asset_partition_range_end": chunk[1]}
    tight = {"ops": {"features": {"config": {"memory_budget_gb": 0.001}}}}
    result = daily.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("features")], tags=span, run_config=tight
    )
    assert result.success
    meta = result.asset_materializations_for_node("features")[-1].metadata
    assert meta["computed"].value == "from the look-back, then from the state"
    assert meta["partitions_written"].value == len(pd.bdate_range(*chunk))  # the holiday's empty partition too
    assert_chunk_serves_the_backfill(lake, backfilled, chunk)


def test_a_day_validated_again_after_the_state_was_saved_makes_the_next_run_read_the_look_back(platform):
    daily, instance, _, backfilled = platform
    run_day(platform, IN_A_ROW[-2])
    again = [dg.AssetKey(k) for k in ("raw_bars_files", "validated_bars")]
    assert daily.execute_in_process(instance=instance, asset_selection=again, partition_key=IN_A_ROW[-4]).success
    worst = differences(run_day(platform, LAST, "from the look-back, then from the state"), backfilled[LAST])
    assert (worst <= TOLERANCE).all()
    run_day(platform, IN_A_ROW[-2], "from the look-back, then from the state")  # its eve's state predates it too
    run_day(platform, LAST, "from the stored state")


def test_the_old_160_session_look_back_served_different_features(platform, monkeypatch):
    """What this test guards against: with the former look-back the EMA/Wilder seeds had not faded (ADX ~1e-2 off)."""
    monkeypatch.setattr(features_assets, "LOOKBACK_SESSIONS", 160)
    lake = platform[2]
    lake.fs.rm(lake.table_path(*features_assets.STATE_TABLE), recursive=True)  # no state: the look-back is read
    worst = differences(run_day(platform, LAST, "from the look-back, then from the state"), platform[3][LAST])
    assert worst[RECURSIVE].max() > 1e-6
    assert worst[WINDOWED].max() <= TOLERANCE  # features over a fixed window never depended on the look-back
