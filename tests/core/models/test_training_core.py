"""Splits, training, backtest metrics and drift statistics (the model contract: test_model_contract.py)."""

from itertools import pairwise

import mlflow
import numpy as np
import pandas as pd
import pytest

from stockpred_core.data.simulation import simulate_bars
from stockpred_core.dataset.labels import cross_sectional_rank, forward_returns, make_label
from stockpred_core.dataset.splits import purged_train_valid, walk_forward_folds
from stockpred_core.dataset.training_set import training_set
from stockpred_core.evaluation.backtest import evaluate, walk_forward_predictions
from stockpred_core.features.batch import FEATURE_COLUMNS, compute_features
from stockpred_core.models.families import TORCH_MISSING, torch_available
from stockpred_core.models.lgbm import LGBMForecaster
from stockpred_core.models.training import TrainingSpec, labelled_set, train_model
from stockpred_core.monitoring.statistics import PSI_ALERT, feature_drift, psi


@pytest.fixture(scope="module")
def data():
    bars = simulate_bars(7, 30, "2021-01-04", "2023-12-29")
    features = compute_features(bars)
    X, y = training_set(features, forward_returns(bars, 5))
    return bars, features, X, y


def test_purged_split_leaves_a_gap_of_the_horizon(data):
    _, _, X, _ = data
    train, valid = purged_train_valid(X.index, 0.2, purge=5)
    dates = pd.DatetimeIndex(X.index.get_level_values("date").unique()).sort_values()
    last_train = X.index[train.to_numpy()].get_level_values("date").max()
    first_valid = X.index[valid.to_numpy()].get_level_values("date").min()
    assert dates.get_loc(first_valid) - dates.get_loc(last_train) == 6  # 5 purged dates between
    assert not (train & valid).any()


def test_walk_forward_folds_tile_the_test_period(data):
    _, _, X, _ = data
    folds = walk_forward_folds(X.index, 4, 252, purge=5)
    dates = pd.DatetimeIndex(X.index.get_level_values("date").unique()).sort_values()
    assert folds[0].test_start == dates[252]
    assert folds[-1].test_end == dates[-1]
    for a, b in pairwise(folds):
        assert dates.get_loc(b.test_start) == dates.get_loc(a.test_end) + 1
    for fold in folds:
        assert dates.get_loc(fold.test_start) - dates.get_loc(fold.train_end) == 6


def test_evaluate_on_known_predictions(data):
    y = data[3]
    perfect = evaluate(y.rename("prediction"), y, horizon=5, cost_bps=0.0).metrics
    assert perfect["ic"] == pytest.approx(1.0) and perfect["rank_ic"] == pytest.approx(1.0)
    assert perfect["hit_rate"] == 1.0 and perfect["mse"] == 0.0 and perfect["annual_return"] > 0
    flipped = evaluate(-y.rename("prediction"), y, horizon=5, cost_bps=0.0).metrics
    assert flipped["rank_ic"] == pytest.approx(-1.0) and flipped["annual_return"] == pytest.approx(
        -perfect["annual_return"]
    )
    noise = pd.Series(np.random.default_rng(0).normal(size=len(y)), index=y.index)
    assert abs(evaluate(noise, y, horizon=5).metrics["rank_ic"]) < 0.03


def test_segments_keep_a_purge_and_embargo_gap_and_folds_report_per_fold(data):
    bars, features, X, _ = data
    spec = TrainingSpec(horizon=5, embargo=3, n_folds=3)
    result = train_model("linear", labelled_set(features, bars, 5), spec)
    assert set(result.sizes) == {"train", "valid", "test"}
    dates = pd.DatetimeIndex(X.index.get_level_values("date").unique()).sort_values()
    spans = {name: [pd.Timestamp(d) for d in span.split("..")] for name, span in result.segments.items()}
    for before, after in (("train", "valid"), ("valid", "test")):
        # 5 purged (the label horizon) + 3 embargoed sessions lie between the segments
        assert dates.get_loc(spans[after][0]) - dates.get_loc(spans[before][1]) == 5 + 3 + 1
    assert [f["fold"] for f in result.fold_metrics] == [0, 1, 2]
    for fold in result.fold_metrics:
        first_test = pd.Timestamp(fold["test"].split("..")[0])
        assert dates.get_loc(first_test) - dates.get_loc(pd.Timestamp(fold["train_end"])) == 9
        assert pd.Timestamp(fold["test"].split("..")[1]) <= spans["train"][1]  # folds stay inside train
    assert result.cv_metrics["rank_ic"] == pytest.approx(np.mean([f["rank_ic"] for f in result.fold_metrics]))


def test_rank_labels_are_centred_cross_sectional_ranks(data):
    bars = data[0]
    returns = forward_returns(bars, 1)
    ranks = make_label(bars, 1, "rank")
    by_date = ranks.groupby(level="date")
    assert by_date.mean().abs().max() < 1e-12 and ranks.max() < 0.5 and ranks.min() > -0.5
    day = returns.index.get_level_values("date")[0]
    assert returns.xs(day).rank().corr(ranks.xs(day).rank()) == pytest.approx(1.0)
    tiny = pd.Series(
        [0.03, -0.01, 0.01], index=pd.MultiIndex.from_product([[day], ["A", "B", "C"]], names=["date", "ticker"])
    )
    assert cross_sectional_rank(tiny).tolist() == pytest.approx([1 / 3, -1 / 3, 0.0])
    with pytest.raises(ValueError, match="label must be one of"):
        make_label(bars, 5, "sign")


@pytest.mark.parametrize(
    "family",
    [
        "lightgbm",
        pytest.param("torch_mlp", marks=pytest.mark.skipif(not torch_available(), reason=TORCH_MISSING)),
        "linear",
        "momentum",
    ],
)
def test_every_family_trains_on_rank_labels_and_is_measured_on_returns(data, family):
    bars, features, _, _ = data
    labelled = labelled_set(features, bars, 5, "rank")
    params = {"epochs": 3} if family == "torch_mlp" else {}
    result = train_model(family, labelled, TrainingSpec(label="rank", n_folds=2), params)
    assert np.isfinite(result.test_metrics["rank_ic"]) and len(result.fold_metrics) == 2
    assert result.importance.index.isin(result.model.feature_names).all() and (result.importance >= 0).all()
    assert labelled.returns.index.equals(labelled.y.index) and not labelled.returns.equals(labelled.y)


def test_training_beats_noise_out_of_sample_on_the_simulated_market(data):
    _, _, X, y = data
    folds = walk_forward_folds(X.index, 3, 252, purge=5)
    oos = walk_forward_predictions(X, y, folds, lambda: LGBMForecaster(num_boost_round=60))
    assert oos.index.get_level_values("date").min() == folds[0].test_start
    assert evaluate(oos, y, 5).metrics["rank_ic"] > 0.0


def test_drift_statistics():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=5000)
    assert psi(ref, rng.normal(size=5000)) < 0.02
    assert psi(ref, rng.normal(loc=1.0, size=5000)) > PSI_ALERT
    frame = pd.DataFrame({c: rng.normal(size=500) for c in FEATURE_COLUMNS[:2]})
    shifted = frame.assign(**{FEATURE_COLUMNS[1]: frame[FEATURE_COLUMNS[1]] + 2})
    report = feature_drift(frame, shifted, FEATURE_COLUMNS[:2])
    assert report["feature"].iloc[0] == FEATURE_COLUMNS[1] and report["ks_pvalue"].iloc[0] < 1e-6


def test_promotion_needs_sanity_and_a_margin_over_the_champion(data):
    from stockpred_core.models.promotion import judge

    _, _, X, y = data
    good, noise = y.rename("prediction"), pd.Series(np.random.default_rng(3).normal(size=len(y)), index=y.index)
    assert judge(good, None, y, X, 5, margin=0.01).promote
    assert not judge(noise * 0 + 1.0, None, y, X, 5, margin=0.01).promote  # constant
    verdict = judge(noise, good, y, X, 5, margin=0.01)
    assert not verdict.promote and "does not beat the champion" in verdict.reasons[0]
    partial = good.drop(
        index=good.xs(X.index.get_level_values("date").max(), level="date", drop_level=False).index[:10]
    )
    assert any("covers" in r for r in judge(partial, None, y.loc[partial.index], X, 5, margin=0.01).reasons)


def test_bad_training_input_is_a_clear_error(data):
    bars, features, _, _ = data
    few = features[features["ticker"].isin(["S00001", "S00002"])]
    with pytest.raises(ValueError, match="2 tickers are too few"):
        labelled_set(few, bars, horizon=5)
    with pytest.raises(ValueError, match="shorter than their warm-up"):  # two weeks of data: all still warming up
        labelled_set(features[features["date"] < "2021-01-20"], bars[bars["date"] < "2021-01-20"], horizon=5)
    with pytest.raises(ValueError, match="widen the training window"):
        labelled_set(features.iloc[:0], bars, horizon=5)
    blank = features.assign(rsi_14=np.nan)
    with pytest.raises(ValueError, match="rsi_14"):
        labelled_set(blank, bars, horizon=5)
    # warmed-up and labelled, but a quarter is too short for the segments, gaps and folds
    short = features[(features["date"] >= "2022-01-03") & (features["date"] < "2022-04-01")]
    with pytest.raises(ValueError, match="too few"):
        train_model("linear", labelled_set(short, bars, 5), TrainingSpec(n_folds=3))
    with pytest.raises(ValueError, match="unknown model family"):
        train_model("xgboost", labelled_set(features, bars, 5))


def test_a_failed_training_leaves_no_mlflow_run(tmp_path):
    import dagster as dg

    from stockpred_assets.training.assets import lgbm_model
    from stockpred_resources.lake import DuckDBResource, LakeResource
    from stockpred_resources.tracking import MLflowResource

    tracking = MLflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    result = dg.materialize(
        [lgbm_model],
        partition_key="2024-01-08",
        raise_on_error=False,
        resources={
            "lake": LakeResource(url=str(tmp_path / "lake")),
            "duckdb": DuckDBResource(database=str(tmp_path / "catalog.duckdb")),
            "mlflow_resource": tracking,
        },
    )
    assert not result.success
    assert "no features or bars before 2024-01-08" in str(result.get_step_failure_events()[0].event_specific_data.error)
    experiment = tracking.setup()
    assert tracking.client().search_runs([experiment]) == []


def test_a_run_that_fails_while_logging_is_deleted_with_its_nested_runs(tmp_path):
    from stockpred_resources.tracking import MLflowResource

    tracking = MLflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    with pytest.raises(RuntimeError, match="disk full"), tracking.start_run("lightgbm-2024-01-08", {"k": "v"}) as run:
        mlflow.log_param("horizon", 5)
        with mlflow.start_run(run_name="trial-0", nested=True, experiment_id=run.info.experiment_id):
            mlflow.log_metric("valid_rank_ic", 0.01)
        raise RuntimeError("disk full")
    assert tracking.client().search_runs([run.info.experiment_id]) == []
    assert mlflow.active_run() is None
    with tracking.start_run("lightgbm-2024-01-15", {}) as kept:
        mlflow.log_param("horizon", 5)
    assert [r.info.run_id for r in tracking.client().search_runs([run.info.experiment_id])] == [kept.info.run_id]


def test_a_fold_with_constant_predictions_counts_as_no_information(data):
    bars, features, _, _ = data
    result = train_model("zero", labelled_set(features, bars, 5), TrainingSpec(n_folds=2))
    assert [f["rank_ic"] for f in result.fold_metrics] == [0.0, 0.0] and result.cv_metrics["rank_ic"] == 0.0


def test_lightgbm_continued_training_adds_trees_fitted_to_the_new_rows():
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2022-01-03", periods=100, name="date"), [f"T{i}" for i in range(30)]], names=["date", "ticker"]
    )
    X = pd.DataFrame(rng.normal(size=(len(idx), 3)), index=idx, columns=["a", "b", "c"])
    y = pd.Series(0.1 * X["a"] + rng.normal(size=len(idx)), index=idx)
    model = LGBMForecaster(num_boost_round=10).fit(X, y)
    before, trees = model.predict(X), model.booster.num_trees()
    recent = X.index.get_level_values("date") >= X.index.get_level_values("date")[-1500]
    shifted = y[recent] + X.loc[recent, "b"]  # the relation changed: b now matters
    model.update(X.loc[recent, ["c", "b", "a"]], shifted, 5)  # any column order
    assert model.booster.num_trees() == trees + 5
    gain = dict(zip(model.feature_names, model.booster.feature_importance("gain"), strict=True))
    assert gain["b"] > gain["c"] and not model.predict(X).equals(before)
    with pytest.raises(ValueError, match="lacks fitted feature"):
        model.update(X[["a", "b"]], y, 5)
