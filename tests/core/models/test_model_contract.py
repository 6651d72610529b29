"""The contract every model family passes: alignment, save/load through the registry, determinism, column order,
clear errors."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from support.model_data import dated_split

from stockpred_core.io.model_registry import configure_mlflow, load_version, log_forecaster, use_registry
from stockpred_core.models import families
from stockpred_core.models.baselines import LinearForecaster, MomentumForecaster, ZeroForecaster, zero_baseline
from stockpred_core.models.families import (
    MODEL_FAMILIES,
    TORCH_MISSING,
    FamilyUnavailableError,
    load_model,
    model_family,
    torch_available,
)
from stockpred_core.models.lgbm import LGBMForecaster

# small settings so the whole file runs in seconds; one LightGBM thread: OpenMP spinning stalls a busy 2-core box
FAST_MODELS = {
    "lightgbm": lambda: LGBMForecaster(num_boost_round=40, params={"num_threads": 1}),
    "torch_mlp": lambda: model_family("torch_mlp")(epochs=4, device="cpu"),
    "linear": LinearForecaster,
    "zero": ZeroForecaster,
    "momentum": MomentumForecaster,
    "ensemble": lambda: model_family("ensemble")(
        members=("lightgbm", "linear"),
        member_params={"lightgbm": {"num_boost_round": 40, "params": {"num_threads": 1}}},
    ),
    "gru": lambda: model_family("gru")(epochs=2, hidden_size=8, num_layers=1, device="cpu", num_threads=1),
}
# torch may round a row differently when it sits elsewhere in a batch; every other family is exact
TOLERANCE = {"torch_mlp": 1e-6, "gru": 1e-6}
TORCH_FAMILIES = ("torch_mlp", "gru")


@pytest.fixture(scope="module")
def data():
    """(X_train, y_train, X_valid, y_valid): the oldest 75% of dates to fit on, the rest to predict; the technical
    columns and the last 30 sessions' path (seq30, what the GRU reads)."""
    return dated_split(7, 20, "2021-01-04", "2022-12-30", sequence=True)


# PyTorch is an optional extra (`make install TORCH=none`): without it the MLP and the GRU are skipped, saying why
WITHOUT_TORCH = pytest.mark.skipif(not torch_available(), reason=TORCH_MISSING)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=WITHOUT_TORCH) if name in TORCH_FAMILIES else name for name in sorted(FAST_MODELS)
    ],
)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def fitted(family, data):
    X_train, y_train, X_valid, y_valid = data
    return FAST_MODELS[family]().fit(X_train, y_train, X_valid, y_valid)


def assert_same_predictions(actual: pd.Series, expected: pd.Series, family: str) -> None:
    pd.testing.assert_series_equal(actual, expected, check_exact=family not in TOLERANCE, atol=TOLERANCE.get(family))


def test_every_family_is_registered_and_tested():
    assert set(FAST_MODELS) == set(MODEL_FAMILIES)
    available = [name for name in MODEL_FAMILIES if name not in TORCH_FAMILIES or torch_available()]
    assert all(model_family(name).family == name for name in available)


def test_a_family_whose_dependency_is_missing_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(families, "torch_available", lambda module="torch": False)
    with pytest.raises(FamilyUnavailableError, match=r"torch_mlp and gru families need PyTorch.*TORCH=cpu"):
        model_family("torch_mlp")
    with pytest.raises(FamilyUnavailableError, match=r"gru families need PyTorch.*make install TORCH=cpu"):
        model_family("gru")
    (tmp_path / "model.json").write_text('{"family": "torch_mlp"}')
    with pytest.raises(FamilyUnavailableError, match="need PyTorch"):
        load_model(tmp_path)
    assert model_family("linear") is LinearForecaster  # the other families do not need it


def test_predictions_are_finite_and_follow_the_given_row_order(family, fitted, data):
    X_valid = data[2]
    pred = fitted.predict(X_valid)
    assert pred.index.equals(X_valid.index) and pred.name == "prediction" and pred.dtype == float
    assert np.isfinite(pred).all()
    assert (pred.nunique() == 1) == (family == "zero")
    shuffled = X_valid.sample(frac=1.0, random_state=0)
    on_shuffled = fitted.predict(shuffled)
    assert on_shuffled.index.equals(shuffled.index)
    assert_same_predictions(on_shuffled, pred.reindex(shuffled.index), family)


def test_missing_feature_values_are_imputed_or_taken_as_missing(fitted, data):
    X_valid = data[2].iloc[:20].copy()
    X_valid.iloc[::2] = np.nan
    assert np.isfinite(fitted.predict(X_valid)).all()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> tuple[str, str]:
    """A registry of this module's own: (its URI, the experiment id)."""
    root = tmp_path_factory.mktemp("contract")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return uri, configure_mlflow(uri, "contract", artifact_location=str(root / "artifacts"))


def test_save_and_load_round_trip_gives_the_same_predictions(family, fitted, data, registry):
    """The path production takes: logged and registered by training, loaded by the service, gate and evaluation."""
    uri, experiment = registry
    X_valid = data[2]
    use_registry(uri)  # another test may have pointed the mlflow module elsewhere
    with mlflow.start_run(experiment_id=experiment):
        info = log_forecaster(fitted, family, X_valid.head(3))
    loaded = load_version(family, info.registered_model_version)
    assert type(loaded) is type(fitted) and loaded.feature_names == fitted.feature_names
    assert_same_predictions(loaded.predict(X_valid), fitted.predict(X_valid), family)


def test_same_seed_gives_identical_predictions(family, fitted, data):
    X_train, y_train, X_valid, y_valid = data
    again = FAST_MODELS[family]().fit(X_train, y_train, X_valid, y_valid)
    pd.testing.assert_series_equal(again.predict(X_valid), fitted.predict(X_valid), check_exact=True)


def test_column_order_does_not_matter(fitted, data):
    X_valid = data[2]
    reordered = X_valid[X_valid.columns[::-1]].assign(unused=1.0)
    pd.testing.assert_series_equal(fitted.predict(reordered), fitted.predict(X_valid), check_exact=True)


def test_a_missing_fitted_feature_is_a_clear_error(fitted, data):
    dropped = fitted.feature_names[0]
    with pytest.raises(ValueError, match=dropped):
        fitted.predict(data[2].drop(columns=[dropped]))


def test_fit_rejects_empty_misaligned_and_all_nan_inputs(family, data):
    X_train, y_train = data[0], data[1]
    make = FAST_MODELS[family]
    with pytest.raises(ValueError, match="empty"):
        make().fit(X_train.iloc[:0], y_train.iloc[:0])
    with pytest.raises(ValueError, match="share one"):
        make().fit(X_train, y_train.iloc[1:])
    with pytest.raises(ValueError, match="share one"):
        make().fit(X_train, y_train.iloc[::-1])
    with pytest.raises(ValueError, match="ret_20"):
        make().fit(X_train.assign(ret_20=np.nan), y_train)


def test_an_alternative_value_no_training_row_covers_is_taken_as_missing(family, data):
    """A source whose coverage starts after the fold's training rows: its values are NaN there and its mask 0. Every
    family fits, and predicts the same whether the column later holds values or not (it learned nothing from it)."""
    X_train, y_train, X_valid = data[0], data[1], data[2]
    uncovered = {"social_sentiment": np.nan, "social_covered": 0.0}
    model = FAST_MODELS[family]().fit(X_train.assign(**uncovered), y_train)
    later = X_valid.assign(social_sentiment=np.linspace(-1, 1, len(X_valid)), social_covered=1.0)
    blind = model.predict(X_valid.assign(**uncovered))
    assert np.isfinite(blind).all()
    if family not in ("momentum", "zero"):  # momentum reads ret_20 alone, zero nothing
        assert np.allclose(model.predict(later.assign(social_covered=0.0)), blind, atol=1e-9)
        zeroed = pd.DataFrame(0.0, index=X_valid.index, columns=X_valid.columns).assign(**uncovered)
        assert not np.allclose(model.predict(zeroed), blind)  # it reads the others
    scaler = getattr(model, "scaler", None)
    if scaler is not None:  # what the saved model restores keeps the column unseen
        restored = type(scaler).from_dict(json.loads(json.dumps(scaler.to_dict())))
        assert np.array_equal(
            restored.transform(later[model.feature_names]), scaler.transform(later[model.feature_names])
        )
    with pytest.raises(ValueError, match="social_covered"):  # a mask is never all NaN: that is a bug upstream
        FAST_MODELS[family]().fit(X_train.assign(social_sentiment=np.nan, social_covered=np.nan), y_train)


def test_an_unfitted_model_refuses_to_predict(family, data):
    with pytest.raises(RuntimeError, match="not fitted"):
        FAST_MODELS[family]().predict(data[2])


def test_loading_checks_the_family(data, tmp_path):
    X_train, y_train = data[0], data[1]
    ZeroForecaster().fit(X_train, y_train).save(tmp_path / "zero")
    with pytest.raises(ValueError, match="'zero' model"):
        LinearForecaster.load(tmp_path / "zero")
    with pytest.raises(ValueError, match="no saved model"):
        load_model(tmp_path / "nothing")


def test_zero_baseline_function_matches_the_zero_model(data):
    X_train, y_train, X_valid, _ = data
    expected = ZeroForecaster().fit(X_train, y_train).predict(X_valid)
    pd.testing.assert_series_equal(zero_baseline(X_valid), expected)


def test_momentum_scale_is_least_squares_or_fixed(data):
    X_train, y_train, X_valid, _ = data
    x = X_train["ret_20"]
    model = MomentumForecaster().fit(X_train, y_train)
    assert model.fitted_scale == pytest.approx((x * y_train).sum() / (x * x).sum())
    fixed = MomentumForecaster(scale=0.5).fit(X_train, y_train)
    np.testing.assert_allclose(fixed.predict(X_valid), 0.5 * X_valid["ret_20"])


def test_linear_recovers_an_exact_linear_signal(data):
    X_train, X_valid = data[0], data[2]
    signal = lambda X: 0.3 * X["ret_5"] - 0.002 * X["rsi_14"] + 0.01  # noqa: E731
    model = LinearForecaster(alpha=1e-9).fit(X_train, signal(X_train))
    np.testing.assert_allclose(model.predict(X_valid), signal(X_valid), atol=1e-8)


def test_contributions_explain_each_row(family, fitted, data):
    X = data[0].iloc[:7]
    contrib = fitted.contributions(X)
    assert list(contrib.columns) == [*fitted.feature_names, "bias"] and contrib.index.equals(X.index)
    assert np.isfinite(contrib.to_numpy()).all()
    if family in ("lightgbm", "linear", "momentum", "zero", "ensemble"):  # additive: they sum to the prediction
        np.testing.assert_allclose(contrib.sum(axis=1), fitted.predict(X), atol=1e-9)


def test_the_matrix_path_gives_the_frame_path_numbers(family, fitted, data):
    """The service scores plain matrices (columns in feature_names order): same numbers as the DataFrame path."""
    X = data[0].iloc[:9].copy()
    X.iloc[2, 0] = np.nan
    values = X[fitted.feature_names].to_numpy(dtype=float)
    np.testing.assert_allclose(fitted.predict_matrix(values), fitted.predict(X).to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        fitted.contributions_matrix(values), fitted.contributions(X).to_numpy(), rtol=0, atol=1e-12
    )
