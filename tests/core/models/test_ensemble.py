"""The ensemble family beyond the shared contract: z-averaging by hand, NaN and constant members, one row alone,
seeds, save/load, config."""

import json

import numpy as np
import pandas as pd
import pytest

from stockpred_core.models import ensemble
from stockpred_core.models.ensemble import EnsembleForecaster, z_average
from stockpred_core.models.families import TORCH_MISSING, load_model, model_family, torch_available

FAST_LGBM = {"num_boost_round": 40, "params": {"num_threads": 1, "min_data_in_leaf": 20}}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """(X_train, y_train, X_test, y_test): three features, a return that a and b explain, 80 dates x 30 tickers."""
    rng = np.random.default_rng(7)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2022-01-03", periods=80), [f"T{i:02d}" for i in range(30)]], names=["date", "ticker"]
    )
    X = pd.DataFrame(rng.normal(size=(len(index), 3)), index=index, columns=["a", "b", "c"])
    y = (0.01 * X["a"] - 0.005 * X["b"] + rng.normal(0, 0.01, len(X))).rename("ret")
    train = index.get_level_values("date") < index.levels[0][60]
    return X[train], y[train], X[~train], y[~train]


@pytest.fixture(scope="module")
def fitted(data) -> EnsembleForecaster:
    X_train, y_train, X_test, y_test = data
    model = EnsembleForecaster(members=("lightgbm", "linear"), member_params={"lightgbm": FAST_LGBM})
    return model.fit(X_train, y_train, X_test, y_test)


def daily_rank_ic(pred: pd.Series, y: pd.Series) -> float:
    frame = pd.concat({"pred": pred, "y": y}, axis=1)
    return float(frame.groupby(level="date").apply(lambda d: d["pred"].corr(d["y"], method="spearman")).mean())


def test_predictions_are_returns_that_find_the_signal(fitted, data):
    X_train, X_test, y_test = data[0], data[2], data[3]
    pred = fitted.predict(X_test)
    assert pred.index.equals(X_test.index) and pred.name == "prediction" and np.isfinite(pred).all()
    assert daily_rank_ic(pred, y_test) > 0.5
    assert ((y_test - pred) ** 2).mean() < 0.8 * (y_test**2).mean()  # a return forecast: it beats predicting 0
    assert [m.family for m in fitted.models] == ["lightgbm", "linear"]
    assert fitted.models[0].booster.best_iteration > 0  # the validation rows reached the booster's early stopping
    on_training = np.column_stack([m.predict(X_train) for m in fitted.models])
    np.testing.assert_allclose(fitted.means, on_training.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fitted.stds, on_training.std(axis=0), rtol=1e-12)


def test_z_average_by_hand():
    """Member x: mean 1, std 2; y: mean 10, std 5; c: a constant (std 0), left out. Mapped back as z * 3.5 + 5.5."""
    predictions = np.array([[3.0, 15.0, 7.0], [1.0, 0.0, 7.0], [np.nan, 20.0, 7.0], [np.nan, np.nan, 7.0]])
    # z: (1, 1) -> 1; (0, -2) -> -1; y alone (2) -> 2; no member that varies -> NaN
    expected = [1 * 3.5 + 5.5, -1 * 3.5 + 5.5, 2 * 3.5 + 5.5, np.nan]
    result = z_average(predictions, np.array([1.0, 10.0, 7.0]), np.array([2.0, 5.0, 0.0]))
    np.testing.assert_allclose(result, expected, rtol=1e-15)


def test_a_member_nan_is_left_out_of_its_row_alone():
    means, stds = np.array([0.0, 0.0]), np.array([1.0, 3.0])
    both = z_average(np.array([[1.0, 3.0], [2.0, -3.0]]), means, stds)
    one_missing = z_average(np.array([[1.0, 3.0], [2.0, np.nan]]), means, stds)
    assert one_missing[0] == both[0] == 2.0  # z 1 and 1, times the mean std 2
    assert one_missing[1] == 4.0 and both[1] == 1.0  # x's z of 2 alone, against (2 - 1) / 2
    assert np.isnan(z_average(np.array([[np.nan, np.nan]]), means, stds)).all()
    # no member varies: the members' mean constant wherever one predicts
    constants = z_average(np.array([[1.0, 3.0], [np.nan, np.nan]]), np.array([1.0, 3.0]), np.zeros(2))
    np.testing.assert_array_equal(constants, [2.0, np.nan])


def test_one_row_scores_alone_as_in_any_batch(fitted, data):
    """The service micro-batches unrelated requests and the stream scores chunks of tickers: a row's prediction
    depends on that row alone."""
    X_test = data[2]
    pred = fitted.predict(X_test)
    same = {"rtol": 1e-12, "atol": 0}  # the same number, up to how a BLAS may sum a one-row product
    for row in (0, 7, len(X_test) - 1):
        alone = X_test.iloc[[row]]
        np.testing.assert_allclose(fitted.predict(alone), pred.iloc[[row]], **same)
        np.testing.assert_allclose(
            fitted.predict_matrix(alone[fitted.feature_names].to_numpy()), [pred.iloc[row]], **same
        )
    mixed = X_test.iloc[[5, 400, 40]]  # different dates and tickers together
    np.testing.assert_allclose(fitted.predict(mixed), pred.iloc[[5, 400, 40]], **same)


def test_a_constant_member_contributes_nothing(data):
    """Zero never varies; momentum with scale 1 predicts `a`: the ensemble is momentum, in predictions and in
    contributions."""
    X_train, y_train, X_test = data[0], data[1], data[2]
    params = {"momentum": {"column": "a", "scale": 1.0}}
    model = EnsembleForecaster(members=("zero", "momentum"), member_params=params).fit(X_train, y_train)
    assert model.stds[0] == 0.0 and model.stds[1] > 0
    np.testing.assert_allclose(model.predict(X_test), X_test["a"], rtol=1e-12, atol=1e-15)
    contrib = model.contributions(X_test.head(5))
    momentum = model.models[1].contributions(X_test.head(5))
    assert list(contrib.columns) == ["a", "b", "c", "bias"]
    np.testing.assert_allclose(contrib[["a", "bias"]], momentum[["a", "bias"]], atol=1e-15)
    assert (contrib[["b", "c"]] == 0).all().all()
    only_zero = EnsembleForecaster(members=("zero",)).fit(X_train, y_train)
    assert (only_zero.predict(X_test) == 0).all()


def test_contributions_sum_to_the_prediction(fitted, data):
    X = data[2].head(9)
    contrib = fitted.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), fitted.predict(X), rtol=0, atol=1e-12)


def test_save_and_load_round_trip(fitted, data, tmp_path):
    X_test = data[2]
    fitted.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["state"]["members"] == ["00_lightgbm", "01_linear"]
    assert meta["state"]["means"] == fitted.means.tolist() and meta["state"]["stds"] == fitted.stds.tolist()
    assert all((tmp_path / "model" / name / "model.json").is_file() for name in meta["state"]["members"])
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is EnsembleForecaster and loaded.config() == fitted.config()
    pd.testing.assert_series_equal(loaded.predict(X_test), fitted.predict(X_test), check_exact=True)


@pytest.mark.skipif(not torch_available(), reason=TORCH_MISSING)
def test_seeds_fit_distinct_members_of_the_seeded_families(data):
    X_train, y_train, X_test = data[0], data[1], data[2]
    params = {"torch_mlp": {"epochs": 2, "device": "cpu"}}
    model = EnsembleForecaster(members=("torch_mlp", "linear"), seeds=2, seed=5, member_params=params)
    model.fit(X_train, y_train)
    assert [(m.family, getattr(m, "seed", None)) for m in model.models] == [
        ("torch_mlp", 5),
        ("torch_mlp", 6),
        ("linear", None),  # no seed to vary: fitted once
    ]
    first, second = (m.predict(X_test) for m in model.models[:2])
    assert not np.allclose(first, second)


def test_default_members_follow_the_torch_install(monkeypatch):
    monkeypatch.setattr(ensemble, "torch_available", lambda: False)
    assert EnsembleForecaster().members == ("lightgbm", "linear")
    monkeypatch.setattr(ensemble, "torch_available", lambda: True)
    assert ensemble.default_members() == ("lightgbm", "torch_mlp")


def test_bad_configurations_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown model family 'boosted'"):
        EnsembleForecaster(members=("lightgbm", "boosted"))
    with pytest.raises(ValueError, match="each model family once"):
        EnsembleForecaster(members=("linear", "linear"))
    with pytest.raises(ValueError, match=r"member_params for \['zero'\]"):
        EnsembleForecaster(members=("linear",), member_params={"zero": {}})
    with pytest.raises(ValueError, match="set a seed"):
        EnsembleForecaster(members=("lightgbm",), member_params={"lightgbm": {"seed": 3}})
    with pytest.raises(ValueError, match="seeds must be at least 1"):
        EnsembleForecaster(members=("linear",), seeds=0)
    with pytest.raises(ValueError, match="linear takes no parameter"):
        EnsembleForecaster(members=("linear",), member_params={"linear": {"epochs": 3}}).member_models()
    assert model_family("ensemble") is EnsembleForecaster
