"""Feature families: a recipe trains on the technical set alone or joins the alternative set (features/alt_features)
on (date, ticker), point in time; the model card records the combined version and columns; the backtest restricts
families, tickers and the test period; the daily predictions of an alternative champion join the day's rows."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from stockpred_assets.evaluation.assets import backtest_report, predictions
from stockpred_assets.monitoring.reference import ChampionFacts, load_reference
from stockpred_assets.serving.assets import online_features
from stockpred_assets.training.assets import linear_model, momentum_model
from stockpred_assets.training.data import load_alt_features, load_training_set, recipe_families
from stockpred_core.data.simulation import simulate_bars
from stockpred_core.dataset.training_set import ALT_TABLE, MASKS
from stockpred_core.features.alpha import ALPHA_COLUMNS
from stockpred_core.features.alternative_catalog import (
    ALT_COLUMNS,
    ALT_FEATURE_SET_VERSION,
    columns_for,
    feature_set_version,
)
from stockpred_core.features.batch import compute_features
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION
from stockpred_core.io.lake import Lake
from stockpred_core.io.model_card import CHAMPION_FROM_TAG, read_model_card
from stockpred_core.io.model_registry import load_version
from stockpred_core.models.families import TORCH_MISSING, torch_available
from stockpred_core.monitoring.performance import Baseline
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.redis import RedisResource
from stockpred_resources.tracking import MLflowResource

pytestmark = pytest.mark.slow  # about a minute: two years of simulated features and three trained models

WEEK = "2023-06-05"  # a Monday: the week whose model is trained, its cut-off
ALT_END = pd.Timestamp("2023-06-09")  # the alternative table's last day (the features run to the end of August)
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
COMBINED = f"{FEATURE_SET_VERSION}+alt-{ALT_FEATURE_SET_VERSION}"


def alt_table(features: pd.DataFrame, covered: set[str], seed: int = 0) -> pd.DataFrame:
    """Plausible alt_features rows, one per (date, ticker) of `features`: news for the `covered` tickers only (one
    item a day, as a daily sentiment file gives: no dispersion), no social source, macro for every ticker."""
    rng = np.random.default_rng(seed)
    frame = features[["date", "ticker"]].reset_index(drop=True)
    n = len(frame)
    for column in ALT_COLUMNS:
        frame[column] = np.nan
    news = frame["ticker"].isin(covered).to_numpy()
    frame.loc[news, "news_sentiment"] = rng.uniform(-1, 1, news.sum())
    frame.loc[news, "news_sentiment_5"] = rng.uniform(-0.5, 0.5, news.sum())
    frame.loc[news, "news_count"] = np.log1p(1.0)
    frame.loc[news, "news_volume_surprise"] = rng.normal(0, 0.3, news.sum())
    frame["news_covered"] = news.astype(float)
    frame["social_covered"] = 0.0
    frame["filings_covered"] = 0.0
    for column, level in (("macro_vix", 18.0), ("macro_dgs10", 3.5), ("macro_ted", 0.3), ("macro_cpi_yoy", 0.03)):
        frame[column] = level * (1 + rng.normal(0, 0.05, n))
    frame["macro_vix_change_5"] = rng.normal(0, 1, n)
    frame["macro_dgs10_change_20"] = rng.normal(0, 0.1, n)
    frame["macro_unrate_change"] = rng.normal(0, 0.1, n)
    frame["macro_covered"] = 1.0
    frame["alt_feature_set_version"] = ALT_FEATURE_SET_VERSION
    return frame


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    bars = simulate_bars(11, 12, "2021-06-01", "2023-08-31")
    features = compute_features(bars)
    tickers = sorted(bars["ticker"].unique())
    covered = set(tickers[:8])
    lake = LakeResource(url=str(root / "lake"))
    days = sorted(pd.to_datetime(bars["date"]).unique())
    lake.write_partitions("validated", "bars", bars, days)
    lake.write_partitions("features", "features", features, days)
    alt = alt_table(features[features["date"] <= ALT_END], covered)
    lake.write_partitions(*ALT_TABLE, alt, [d for d in days if d <= ALT_END])
    tracking = MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        registered_model="families-test",
    )
    resources = {
        "lake": lake,
        "duckdb": DuckDBResource(database=str(root / "catalog.duckdb")),
        "mlflow_resource": tracking,
        "market_data": MarketDataResource(),
        "redis": RedisResource(),
    }
    return {"root": root, "bars": bars, "features": features, "alt": alt, "covered": covered, "tickers": tickers,
            "resources": resources}  # fmt: skip


def train(world, families: list[str]) -> dict:
    config = {"train_weeks": 52, "horizon": 1, "n_folds": 2, "feature_families": families}
    result = dg.materialize(
        [linear_model],
        partition_key=WEEK,
        resources=world["resources"],
        run_config={"ops": {"linear_model": {"config": config}}},
    )
    return {k: v.value for k, v in result.asset_materializations_for_node("linear_model")[0].metadata.items()}


@pytest.fixture(scope="module")
def trained(world) -> dict[str, dict]:
    """The week's linear model trained with news and macro, and with the technical set alone."""
    return {"alt": train(world, ["technical", "news", "macro"]), "technical": train(world, ["technical"])}


def card(world, version: str):
    tracking = world["resources"]["mlflow_resource"]
    return read_model_card(tracking.client(), tracking.registered_model, version)


def test_the_training_set_joins_the_families_asked_for_point_in_time(world, tmp_path):
    lake, duckdb = world["resources"]["lake"], world["resources"]["duckdb"]
    cutoff = pd.Timestamp(WEEK)
    technical = load_training_set(lake, duckdb, cutoff, 52, 1, "return")
    assert list(technical.X.columns) == FEATURE_COLUMNS  # the technical path as before
    data = load_training_set(lake, duckdb, cutoff, 52, 1, "return", ["news", "macro"])
    asked = [*FEATURE_COLUMNS, *columns_for(["news", "macro"])]
    assert data.dropped == ("news_sentiment_std",)  # one item a day: no dispersion to learn from
    assert list(data.X.columns) == [c for c in asked if c not in data.dropped]
    assert data.X.index.equals(technical.X.index) and data.y.equals(technical.y)  # the join adds columns, not rows
    alt = world["alt"].set_index(["date", "ticker"])
    covered = data.X.index.get_level_values("ticker").isin(world["covered"])
    expected = alt.loc[data.X.index[covered], ["news_sentiment", "news_covered", "macro_vix"]]
    pd.testing.assert_frame_equal(data.X.loc[covered, expected.columns], expected)
    uncovered = data.X[~covered]
    assert len(uncovered) and uncovered["news_sentiment"].isna().all() and (uncovered["news_covered"] == 0).all()
    assert data.X["macro_covered"].eq(1).all()

    # the same history followed by alternative rows that would give the future away: nothing on or after the
    # cut-off is read
    poisoned = LakeResource(url=str(tmp_path / "poisoned"))
    store = Lake(lake.url)
    for layer, table in (("validated", "bars"), ("features", "features")):
        frame = store.read_range(layer, table, "2021-06-01", cutoff - pd.Timedelta(days=1))
        poisoned.write_partitions(layer, table, frame, sorted(frame["date"].unique()))
    future = world["alt"].copy()
    future.loc[future["date"] >= cutoff, ["news_sentiment", "macro_vix"]] = 1e6
    poisoned.write_partitions(*ALT_TABLE, future, sorted(future["date"].unique()))
    again = load_training_set(poisoned, duckdb, cutoff, 52, 1, "return", ["news", "macro"])
    pd.testing.assert_frame_equal(again.X, data.X)


def test_a_recipe_naming_alpha158_takes_the_library_of_the_feature_table(world):
    """The Alpha158-like columns are the feature table's (stored by `features`), after the technical ones, on the
    same rows; a model asset takes them (they are served), and its card records them under the technical version."""
    lake, duckdb = world["resources"]["lake"], world["resources"]["duckdb"]
    cutoff = pd.Timestamp(WEEK)
    technical = load_training_set(lake, duckdb, cutoff, 52, 1, "return")
    data = load_training_set(lake, duckdb, cutoff, 52, 1, "return", recipe_families(["alpha158"]))
    assert list(data.X.columns) == [*FEATURE_COLUMNS, *ALPHA_COLUMNS]
    assert data.X.index.equals(technical.X.index) and data.y.equals(technical.y)
    pd.testing.assert_frame_equal(data.X[FEATURE_COLUMNS], technical.X)
    stored = world["features"].set_index(["date", "ticker"]).loc[data.X.index, ALPHA_COLUMNS]
    pd.testing.assert_frame_equal(data.X[ALPHA_COLUMNS], stored)
    late = data.X.index.get_level_values("date") >= pd.Timestamp("2023-01-02")
    assert data.X.loc[late, ALPHA_COLUMNS].notna().all().all()  # past the 61-session warm-up: complete

    meta = train(world, ["technical", "alpha158"])
    library = card(world, meta["model_version"])
    assert library.feature_set_version == FEATURE_SET_VERSION
    assert list(library.feature_columns) == [*FEATURE_COLUMNS, *ALPHA_COLUMNS]
    model = load_version(library.name, library.version)
    coef = dict(zip(model.feature_names, model.coef, strict=True))
    assert any(coef[c] != 0 for c in ALPHA_COLUMNS)


def test_a_recipe_the_alternative_table_cannot_serve_fails_with_the_reason(world, tmp_path):
    lake, duckdb = world["resources"]["lake"], world["resources"]["duckdb"]
    with pytest.raises(dg.Failure, match=r"no row of the window is covered by the alternative families \['social'\]"):
        load_training_set(lake, duckdb, pd.Timestamp(WEEK), 52, 1, "return", ["social"])
    with pytest.raises(dg.Failure, match=r"no partition in 2023-07-03\.\.2023-08-25: materialize alt_features"):
        load_training_set(lake, duckdb, pd.Timestamp("2023-08-28"), 8, 1, "return", ["news"])
    with pytest.raises(dg.Failure, match=r"unknown feature families \['sentiment'\]"):
        recipe_families(["technical", "sentiment"])
    assert recipe_families(["technical", "macro", "news"]) == ["news", "macro"]
    assert recipe_families(None) == []  # the settings' default: the technical set
    with pytest.raises(dg.Failure, match=r"\['seq30'\] are for backtests .* a model to be served cannot be trained"):
        recipe_families(["technical", "alpha158", "seq30"])
    assert recipe_families(["technical", "macro", "alpha158"]) == ["alpha158", "macro"]
    assert recipe_families(["seq30", "macro", "alpha158"], served=False) == ["alpha158", "macro", "seq30"]

    other = LakeResource(url=str(tmp_path / "lake"))
    store = Lake(lake.url)
    for layer, table in (("validated", "bars"), ("features", "features")):
        frame = store.read_range(layer, table, "2022-01-01", WEEK)
        other.write_partitions(layer, table, frame, sorted(frame["date"].unique()))
    stale = world["alt"].assign(alt_feature_set_version="0ld")
    other.write_partitions(*ALT_TABLE, stale, sorted(stale["date"].unique()))
    with pytest.raises(dg.Failure, match=r"alternative feature set \['0ld'\], not .*rematerialize alt_features"):
        load_training_set(other, duckdb, pd.Timestamp(WEEK), 52, 1, "return", ["macro"])


def test_the_card_records_the_combined_version_and_columns_and_technical_stays_bars_only(world, trained):
    meta = trained["alt"]
    alt = card(world, meta["model_version"])
    assert alt.feature_set_version == feature_set_version(["news", "macro"]) == COMBINED
    assert meta["feature_set_version"] == COMBINED and meta["alt_columns_without_values"] == ["news_sentiment_std"]
    expected = [c for c in (*FEATURE_COLUMNS, *columns_for(["news", "macro"])) if c != "news_sentiment_std"]
    assert list(alt.feature_columns) == expected
    model = load_version(alt.name, alt.version)
    assert list(model.feature_names) == expected
    coef = dict(zip(model.feature_names, model.coef, strict=True))
    assert coef["news_sentiment"] != 0 and coef["macro_vix"] != 0  # the alternative columns were fitted

    bars_only = card(world, trained["technical"]["model_version"])
    assert bars_only.feature_set_version == FEATURE_SET_VERSION and list(bars_only.feature_columns) == FEATURE_COLUMNS


def test_the_backtest_restricts_families_tickers_and_the_test_period(world):
    tickers = world["tickers"][:6]
    config = {
        "family": "linear", "horizon": 1, "train_weeks": 52, "n_folds": 2, "oos_start": "2023-01-03",
        "oos_end": "2023-03-31", "feature_families": ["technical", "news"], "tickers": [t.lower() for t in tickers],
    }  # fmt: skip
    result = dg.materialize(
        [backtest_report],
        partition_key=WEEK,
        resources=world["resources"],
        run_config={"ops": {"backtest_report": {"config": config}}},
    )
    meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
    assert meta["tickers"] == 6 and meta["feature_set_version"] == COMBINED
    assert meta["feature_columns"] == len(FEATURE_COLUMNS) + len(columns_for(["news"])) - 1  # without the std
    first, last = meta["oos_range"].split("..")
    assert pd.Timestamp(first) >= pd.Timestamp("2023-01-03") and pd.Timestamp(last) <= pd.Timestamp("2023-03-31")
    assert set(pd.read_parquet(meta["oos_predictions_file"])["ticker"]) == set(tickers)


def test_the_daily_predictions_of_an_alternative_champion_join_the_days_rows(world, trained):
    tracking = world["resources"]["mlflow_resource"]
    version = trained["alt"]["model_version"]
    tracking.client().set_model_version_tag(tracking.registered_model, version, CHAMPION_FROM_TAG, WEEK)
    result = dg.materialize([predictions], resources=world["resources"], tags={RANGE[0]: WEEK, RANGE[1]: "2023-06-16"})
    meta = {k: v.value for k, v in result.asset_materializations_for_node("predictions")[0].metadata.items()}
    late = [f"{d:%Y-%m-%d}" for d in pd.bdate_range("2023-06-12", "2023-06-16")]
    assert sorted(meta["skipped"]) == late and "no alt_features rows for the day" in meta["skipped"][late[0]]
    table = Lake(world["resources"]["lake"].url).read_range("evaluation", "predictions", WEEK, "2023-06-16")
    assert set(table["date"]) == set(pd.bdate_range(WEEK, ALT_END))
    # the scores are the champion's on the day's technical row with its alternative row joined
    model = load_version(tracking.registered_model, version)
    day = pd.Timestamp("2023-06-07")
    row = world["features"][world["features"]["date"] == day].merge(world["alt"], on=["date", "ticker"])
    expected = model.predict(row.set_index(["date", "ticker"]))
    scored = table[table["date"] == day].set_index(["date", "ticker"])["prediction"]
    pd.testing.assert_series_equal(scored.sort_index(), expected.sort_index(), check_names=False)


def test_online_features_append_the_alternative_row_of_the_vectors_date(world, tmp_path):
    lake = LakeResource(url=str(tmp_path / "lake"))
    store = Lake(world["resources"]["lake"].url)
    features = store.read_range("features", "features", "2023-05-15", ALT_END)
    lake.write_partitions("features", "features", features, sorted(features["date"].unique()))
    context = dg.build_asset_context()
    meta = online_features(context=context, lake=lake, redis=RedisResource()).metadata
    vectors = Lake(lake.url).read_table("serving", "online_features")
    assert "no partition" in meta["alternative_features"] and set(vectors["feature_set_version"]) == {
        FEATURE_SET_VERSION
    }
    assert not set(ALT_COLUMNS) & set(vectors.columns)  # no alternative table: the vectors as before
    assert set(ALPHA_COLUMNS) <= set(vectors.columns)  # the library is served with the technical set

    lake.write_partitions(*ALT_TABLE, world["alt"], sorted(world["alt"]["date"].unique()))
    online_features(context=context, lake=lake, redis=RedisResource())
    vectors = Lake(lake.url).read_table("serving", "online_features")
    assert set(vectors["feature_set_version"]) == {COMBINED}
    numeric = [c for c in vectors.columns if c not in ("date", "ticker", "feature_set_version")]
    # the layout: technical, then alternative columns, then the library (what the stream may leave out)
    assert numeric[-len(ALPHA_COLUMNS) - len(ALT_COLUMNS) : -len(ALPHA_COLUMNS)] == ALT_COLUMNS
    assert numeric[-len(ALPHA_COLUMNS) :] == ALPHA_COLUMNS
    alt = world["alt"].set_index(["date", "ticker"])
    for row in vectors.itertuples():
        expected = alt.loc[(row.date, row.ticker)]
        assert row.news_covered == expected["news_covered"] and row.macro_vix == expected["macro_vix"]
    assert vectors[MASKS].notna().all().all()


def test_a_window_scored_by_two_sentiment_models_is_named_when_training_reads_it(world, tmp_path, caplog):
    """After sentiment_model is retrained, alt_features partitions not rematerialized keep the old scorer's
    sentiment: training reads them, and says which versions the window mixes."""
    lake = LakeResource(url=str(tmp_path / "lake"))
    alt = world["alt"]
    dates = sorted(alt["date"].unique())
    mixed = alt.assign(sentiment_model_version=np.where(alt["date"] < dates[len(dates) // 2], "3", "4"))
    lake.write_partitions(*ALT_TABLE, mixed, dates)
    duckdb = world["resources"]["duckdb"]
    with caplog.at_level("WARNING"):
        read = load_alt_features(lake, duckdb, dates[0], dates[-1], ["news"])
    assert len(read) == len(alt) and "sentiment model versions ['3', '4']" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_alt_features(lake, duckdb, dates[0], dates[-1], ["macro"])  # no sentiment column used
    assert "sentiment model versions" not in caplog.text


def test_a_backtest_updates_lightgbm_between_refits_and_refuses_other_families(world):
    """update_every: each fold's LightGBM model continues training on newly labelled rows inside its test block;
    its report has its own file name; a family that cannot update is refused with the reason."""
    config = {
        "family": "lightgbm", "label": "rank", "horizon": 1, "train_weeks": 52, "n_folds": 2,
        "oos_start": "2023-01-03", "oos_end": "2023-03-31", "update_every": 5, "update_window": 60,
        "tickers": world["tickers"][:10],
    }  # fmt: skip
    run = {"ops": {"backtest_report": {"config": config}}}
    result = dg.materialize([backtest_report], partition_key=WEEK, resources=world["resources"], run_config=run)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
    assert meta["recipe"] == "lightgbm-rank-h1-update5-uwindow60-tickers10" and meta["folds"] == 2
    updated = pd.read_parquet(meta["oos_predictions_file"])
    plain = {"ops": {"backtest_report": {"config": {**config, "update_every": 0}}}}
    result = dg.materialize([backtest_report], partition_key=WEEK, resources=world["resources"], run_config=plain)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
    assert meta["recipe"] == "lightgbm-rank-h1-tickers10"  # rounds and window are not named without updates
    fixed = pd.read_parquet(meta["oos_predictions_file"])
    assert updated[["date", "ticker"]].equals(fixed[["date", "ticker"]]) and updated["prediction"].notna().all()
    first_week = updated["date"] <= updated["date"].min() + pd.Timedelta(days=6)  # before the first update
    assert np.allclose(updated.loc[first_week, "prediction"], fixed.loc[first_week, "prediction"])
    assert not np.allclose(updated["prediction"], fixed["prediction"])  # the updates changed the later forecasts
    refused = dg.materialize(
        [backtest_report],
        partition_key=WEEK,
        resources=world["resources"],
        run_config={"ops": {"backtest_report": {"config": {**config, "family": "linear"}}}},
        raise_on_error=False,
    )
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "only lightgbm updates incrementally, not linear" in failure.step_failure_data.error.message


@pytest.mark.skipif(not torch_available(), reason=TORCH_MISSING)
def test_a_backtest_of_the_gru_reads_the_price_path_of_the_windows_bars(world):
    """The sequence model's recipe: the seq30 family computed from the bars, the GRU trained fold by
    fold; without seq30 in the recipe the GRU says what it needs."""
    config = {
        "family": "gru", "label": "rank", "horizon": 1, "train_weeks": 52, "n_folds": 2, "epochs": 2,
        "oos_start": "2023-01-03", "oos_end": "2023-02-28", "feature_families": ["technical", "seq30"],
    }  # fmt: skip
    run = {"ops": {"backtest_report": {"config": config}}}
    result = dg.materialize([backtest_report], partition_key=WEEK, resources=world["resources"], run_config=run)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
    assert meta["recipe"] == "gru-rank-h1-seq30-epochs2" and meta["feature_columns"] == len(FEATURE_COLUMNS) + 150
    predictions = pd.read_parquet(meta["oos_predictions_file"])
    assert predictions["prediction"].notna().all() and predictions["prediction"].nunique() > 10
    without = {"ops": {"backtest_report": {"config": {**config, "feature_families": ["technical"]}}}}
    refused = dg.materialize(
        [backtest_report], partition_key=WEEK, resources=world["resources"], run_config=without, raise_on_error=False
    )
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "the gru family reads the seq30 feature family" in failure.step_failure_data.error.message


def test_online_features_name_the_tickers_that_get_no_vector(world, tmp_path):
    """A ticker listed 10 sessions before the newest day is still warming up (ret_20 and the 20-session statistics
    need 20): it has feature rows but no vector, and the metadata says which feature it lacks."""
    lake = LakeResource(url=str(tmp_path / "lake"))
    bars = world["bars"]
    days = sorted(bars["date"].unique())
    listed = bars[(bars["ticker"] != "S00003") | (bars["date"] >= days[-10])]
    features = compute_features(listed[listed["date"] >= days[-120]])
    recent = features[features["date"] >= days[-20]]
    lake.write_partitions("features", "features", recent, sorted(recent["date"].unique()))
    meta = online_features(context=dg.build_asset_context(), lake=lake, redis=RedisResource()).metadata
    vectors = Lake(lake.url).read_table("serving", "online_features")
    assert "S00003" not in set(vectors["ticker"]) and len(vectors) == len(world["tickers"]) - 1
    assert meta["tickers_without_vector"].value == 1
    assert "| S00003   | 2023-08-31   | ret_20, log_ret_20" in meta["without_vector"].value


def test_the_drift_reference_reads_what_each_champion_takes(world):
    """The reference is fitted on the champion's training rows: with the library for a champion of it, and the whole
    technical set (the rows a model sees) for a champion whose card lists fewer columns (a momentum model's one)."""
    library = card(world, train(world, ["technical", "alpha158"])["model_version"])
    config = {"train_weeks": 52, "horizon": 1, "n_folds": 2}
    result = dg.materialize(
        [momentum_model],
        partition_key=WEEK,
        resources=world["resources"],
        run_config={"ops": {"momentum_model": {"config": config}}},
    )
    meta = result.asset_materializations_for_node("momentum_model")[0].metadata
    momentum = card(world, meta["model_version"].value)
    assert set(momentum.feature_columns) < set(FEATURE_COLUMNS)
    lake, duckdb = world["resources"]["lake"], world["resources"]["duckdb"]
    tracking = world["resources"]["mlflow_resource"]
    for which in (library, momentum):
        reference = load_reference(lake, duckdb, tracking, ChampionFacts(which, Baseline(rank_ic=0.01)), 20)
        assert reference.window == 20 and reference.sessions > 100
