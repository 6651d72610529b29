"""The simple families every model must beat: no change (zero), scaled momentum, ridge regression."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from stockpred_core.models.forecaster import FITTED, ColumnForecaster, as_prediction, select_features
from stockpred_core.models.standardizer import Standardizer


@dataclass
class ZeroForecaster(ColumnForecaster):
    """The naive forecast every model must beat: no change. Still records its features so it swaps in anywhere."""

    family: ClassVar[str] = "zero"

    def _fit(self, X, y, X_valid, y_valid) -> None:
        self.features = list(X.columns)

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X))

    def _save(self, directory: Path) -> dict:
        return {}

    def _restore_state(self, state: dict, directory: Path) -> None:
        pass


def zero_baseline(X: pd.DataFrame) -> pd.Series:
    """The naive forecast every model must beat: no change."""
    return as_prediction(np.zeros(len(X)), X)


@dataclass
class MomentumForecaster(ColumnForecaster):
    """Momentum: `scale` x one feature column (NaN -> training median); scale=None fits it by least squares."""

    family: ClassVar[str] = "momentum"

    column: str = "ret_20"
    scale: float | None = None  # None: slope through the origin fitted on the training rows
    fitted_scale: float | None = field(default=None, init=False, metadata=FITTED)
    median: float | None = field(default=None, init=False, metadata=FITTED)

    def _fit(self, X, y, X_valid, y_valid) -> None:
        x = select_features(X, [self.column])[self.column].to_numpy(dtype=float)
        self.median = float(np.nanmedian(x))
        x = np.where(np.isnan(x), self.median, x)
        denominator = float(x @ x)
        fitted = float(x @ y.to_numpy(dtype=float)) / denominator if denominator > 0 else 0.0
        self.fitted_scale = fitted if self.scale is None else float(self.scale)
        self.features = [self.column]

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        x = X[self.column].to_numpy(dtype=float)
        return self.fitted_scale * np.where(np.isnan(x), self.median, x)

    def _save(self, directory: Path) -> dict:
        return {"fitted_scale": self.fitted_scale, "median": self.median}

    def _restore_state(self, state: dict, directory: Path) -> None:
        self.fitted_scale, self.median = state["fitted_scale"], state["median"]


@dataclass
class LinearForecaster(ColumnForecaster):
    """Ridge regression (numpy closed form) on median-imputed, standardized features; ignores validation data."""

    family: ClassVar[str] = "linear"

    alpha: float = 1.0  # L2 penalty on the standardized coefficients: minimises |y - b0 - Zb|^2 + alpha |b|^2
    scaler: Standardizer | None = field(default=None, init=False, repr=False, metadata=FITTED)
    coef: np.ndarray | None = field(default=None, init=False, repr=False, metadata=FITTED)
    intercept: float = field(default=0.0, init=False, metadata=FITTED)

    def _fit(self, X, y, X_valid, y_valid) -> None:
        self.scaler = Standardizer.fit(X)
        Z = self.scaler.transform(X)
        target = y.to_numpy(dtype=float)
        self.intercept = float(target.mean())  # Z is centred, so the intercept is the label mean
        gram = Z.T @ Z + self.alpha * np.eye(Z.shape[1])
        self.coef = np.linalg.solve(gram, Z.T @ (target - self.intercept))
        self.features = list(X.columns)

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        return self.scaler.transform(X) @ self.coef + self.intercept

    def _save(self, directory: Path) -> dict:
        return {"scaler": self.scaler.to_dict(), "coef": self.coef.tolist(), "intercept": self.intercept}

    def _restore_state(self, state: dict, directory: Path) -> None:
        self.scaler = Standardizer.from_dict(state["scaler"])
        self.coef = np.asarray(state["coef"], dtype=float)
        self.intercept = state["intercept"]
