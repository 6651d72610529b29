"""Forecasting models: `fit(X, y)` then `predict(X)` returning a Series indexed like X by (date, ticker)."""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

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
    "num_threads": 2,
    "deterministic": True,
    "force_col_wise": True,
}


@dataclass
class LGBMForecaster:
    """Gradient-boosted trees on the feature columns; early-stops on a validation segment when given one."""

    params: dict = field(default_factory=dict)
    num_boost_round: int = 400
    early_stopping_rounds: int = 40
    seed: int = 0
    booster: lgb.Booster | None = None

    def fit(
        self, X: pd.DataFrame, y: pd.Series, X_valid: pd.DataFrame | None = None, y_valid: pd.Series | None = None
    ) -> LGBMForecaster:
        if len(X) != len(y) or not X.index.equals(y.index):
            raise ValueError("features and labels must share one (date, ticker) index")
        params = {**DEFAULT_LGBM_PARAMS, **self.params, "seed": self.seed}
        train = lgb.Dataset(X, y, free_raw_data=False)
        callbacks, valid_sets = [], []
        if X_valid is not None and len(X_valid):
            valid_sets = [lgb.Dataset(X_valid, y_valid, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster = lgb.train(params, train, self.num_boost_round, valid_sets=valid_sets, callbacks=callbacks)
        return self

    @property
    def feature_names(self) -> list[str]:
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        return list(self.booster.feature_name())

    def predict(self, X: pd.DataFrame) -> pd.Series:
        values = self.booster_or_raise().predict(
            X[self.feature_names], num_iteration=self.booster.best_iteration or None
        )
        return pd.Series(np.asarray(values, dtype=float), index=X.index, name="prediction")

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions (SHAP values from LightGBM) for each row; the last column is the bias."""
        raw = self.booster_or_raise().predict(
            X[self.feature_names], pred_contrib=True, num_iteration=self.booster.best_iteration or None
        )
        return pd.DataFrame(raw, index=X.index, columns=[*self.feature_names, "bias"])

    def booster_or_raise(self) -> lgb.Booster:
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        return self.booster


def zero_baseline(X: pd.DataFrame) -> pd.Series:
    """The naive forecast every model must beat: no change."""
    return pd.Series(0.0, index=X.index, name="prediction")
