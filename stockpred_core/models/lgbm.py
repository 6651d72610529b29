"""The LightGBM family: gradient-boosted trees, early-stopped on a validation segment, exact SHAP contributions."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from stockpred_core.models.forecaster import FITTED, Forecaster, check_training_data, select_features

DEFAULT_LGBM_PARAMS = {
    "objective": "regression",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "verbosity": -1,
    "num_threads": os.cpu_count() or 1,  # every core
    "deterministic": True,
    "force_col_wise": True,
}


@dataclass
class LGBMForecaster(Forecaster):
    """Gradient-boosted trees on the feature columns; early-stops on a validation segment when given one."""

    family: ClassVar[str] = "lightgbm"
    booster_file: ClassVar[str] = "booster.txt"

    params: dict = field(default_factory=dict)
    num_boost_round: int = 400
    early_stopping_rounds: int = 40
    seed: int = 0
    booster: lgb.Booster | None = field(default=None, metadata=FITTED)

    def _fit(self, X, y, X_valid, y_valid) -> None:
        params = {**DEFAULT_LGBM_PARAMS, **self.params, "seed": self.seed}
        train = lgb.Dataset(X, y, free_raw_data=False)
        callbacks, valid_sets = [], []
        if X_valid is not None:
            valid_sets = [lgb.Dataset(X_valid, y_valid, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster = lgb.train(params, train, self.num_boost_round, valid_sets=valid_sets, callbacks=callbacks)

    def update(self, X: pd.DataFrame, y: pd.Series, rounds: int) -> LGBMForecaster:
        """Continued training: `rounds` more trees fitted to the fitted model's residuals on (X, y), e.g. the rows
        whose labels became known since the last refit (the booster keeps every earlier tree)."""
        booster = self.booster_or_raise()
        check_training_data(X, y)
        X = select_features(X, self.feature_names)
        params = {**DEFAULT_LGBM_PARAMS, **self.params, "seed": self.seed}
        if booster.best_iteration:  # early-stopped: continue from the trees it predicts with
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        self.booster = lgb.train(params, lgb.Dataset(X, y), rounds, init_model=booster, keep_training_booster=True)
        return self

    def _fitted_features(self) -> list[str] | None:
        return None if self.booster is None else list(self.booster.feature_name())

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster_or_raise().predict(X, num_iteration=self.booster.best_iteration or None)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions (SHAP values from LightGBM) for each row; the last column is the bias."""
        raw = self.booster_or_raise().predict(
            select_features(X, self.feature_names), pred_contrib=True, num_iteration=self.booster.best_iteration or None
        )
        return pd.DataFrame(raw, index=X.index, columns=[*self.feature_names, "bias"])

    def predict_matrix(self, values: np.ndarray) -> np.ndarray:
        booster = self.booster_or_raise()
        return np.asarray(booster.predict(values, num_iteration=booster.best_iteration or None), dtype=float)

    def contributions_matrix(self, values: np.ndarray) -> np.ndarray:
        booster = self.booster_or_raise()
        raw = booster.predict(values, pred_contrib=True, num_iteration=booster.best_iteration or None)
        return np.asarray(raw, dtype=float)

    def booster_or_raise(self) -> lgb.Booster:
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        return self.booster

    def _save(self, directory: Path) -> dict:
        # num_iteration: the best iteration when early-stopped, so the loaded booster predicts with the same trees
        self.booster.save_model(directory / self.booster_file, num_iteration=self.booster.best_iteration or None)
        return {}

    def _restore(self, state: dict, feature_names: list[str], directory: Path) -> None:
        self.booster = lgb.Booster(model_file=directory / self.booster_file)
        if self.feature_names != feature_names:
            raise ValueError(f"{directory}: booster features {self.feature_names} differ from {feature_names}")
