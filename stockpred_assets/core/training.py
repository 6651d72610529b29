"""Fit a forecaster on purged train / validation / test segments and measure it on the held-out test segment."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from stockpred_assets.core.backtest import evaluate
from stockpred_assets.core.dataset import training_set
from stockpred_assets.core.feature_registry import FEATURE_COLUMNS
from stockpred_assets.core.labels import forward_returns
from stockpred_assets.core.models import LGBMForecaster
from stockpred_assets.core.splits import purged_train_valid
from stockpred_assets.core.tuning import tune_lgbm

MIN_TICKERS = 5  # rank IC and the long-short portfolio need a cross-section


@dataclass(frozen=True)
class TrainingResult:
    model: LGBMForecaster
    test_metrics: dict[str, float]
    segments: dict[str, str]  # segment -> "first..last" dates
    sizes: dict[str, int]
    residual_quantiles: dict[str, float]  # of test residuals (label - prediction): a conformal interval
    params: dict  # LightGBM parameters the final model used (the study's best when tuned)
    importance: pd.Series  # total split gain per feature, largest first
    fingerprint: str  # sha256 of the rows and labels trained and tested on: same data, same fingerprint
    input_example: pd.DataFrame  # a few test rows (for the MLflow signature)
    trials: list[dict]  # the study's trials: number, state, value, params (empty when not tuned)


def fingerprint(X: pd.DataFrame, y: pd.Series) -> str:
    """A content hash of a training set (its index, features and labels)."""
    hashed = pd.util.hash_pandas_object(X.join(y.rename("__label__")), index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _span(index: pd.MultiIndex) -> str:
    dates = index.get_level_values("date")
    return f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}"


def train_lgbm(
    features: pd.DataFrame,
    bars: pd.DataFrame,
    horizon: int,
    seed: int = 0,
    valid_fraction: float = 0.15,
    test_fraction: float = 0.15,
    params: dict | None = None,
    num_boost_round: int = 400,
    n_trials: int = 0,
    storage: str | None = None,
    study_name: str = "lgbm",
    callbacks: Sequence[Callable] = (),
) -> TrainingResult:
    """Train on the oldest data, early-stop on the next segment, report on the newest; purge `horizon` between.
    With `n_trials`, an Optuna study on the train/validation segments picks the parameters first."""
    empty = [c for c in FEATURE_COLUMNS if c in features.columns and len(features) and features[c].isna().all()]
    if empty:
        raise ValueError(
            f"features without a single value in the window (a window shorter than their warm-up, or a broken "
            f"feature): {empty}"
        )
    X, y = training_set(features, forward_returns(bars, horizon))
    if len(X) == 0:
        raise ValueError("no rows with both complete features and a known label: widen the training window")
    tickers = X.index.get_level_values("ticker").nunique()
    if tickers < MIN_TICKERS:
        raise ValueError(
            f"{tickers} tickers are too few for cross-sectional metrics: at least {MIN_TICKERS} are needed"
        )
    rest, test = purged_train_valid(X.index, test_fraction, horizon)
    X_rest, y_rest = X[rest.to_numpy()], y[rest.to_numpy()]
    train, valid = purged_train_valid(X_rest.index, valid_fraction / (1 - test_fraction), horizon)
    X_train, y_train = X_rest[train.to_numpy()], y_rest[train.to_numpy()]
    X_valid, y_valid = X_rest[valid.to_numpy()], y_rest[valid.to_numpy()]
    params, trials = dict(params or {}), []
    if n_trials > 0:
        study = tune_lgbm(
            X_train, y_train, X_valid, y_valid, horizon, n_trials, storage, study_name, seed, num_boost_round, callbacks
        )
        trials = [
            {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params}
            for t in study.trials
        ]
        if any(t["state"] == "complete" for t in trials):
            params.update(study.best_params)
    model = LGBMForecaster(params=params, num_boost_round=num_boost_round, seed=seed)
    model.fit(X_train, y_train, X_valid, y_valid)
    X_test, y_test = X[test.to_numpy()], y[test.to_numpy()]
    pred = model.predict(X_test)
    residuals = y_test - pred
    segments = {"train": X_rest[train.to_numpy()].index, "valid": X_rest[valid.to_numpy()].index, "test": X_test.index}
    return TrainingResult(
        model=model,
        test_metrics=evaluate(pred, y_test, horizon).metrics,
        segments={name: _span(index) for name, index in segments.items()},
        sizes={name: len(index) for name, index in segments.items()},
        residual_quantiles={"q05": float(residuals.quantile(0.05)), "q95": float(residuals.quantile(0.95))},
        params=params,
        trials=trials,
        importance=pd.Series(
            model.booster.feature_importance("gain"), index=model.feature_names, name="gain"
        ).sort_values(ascending=False),
        fingerprint=fingerprint(X, y),
        input_example=X_test.head(5),
    )
