"""Forecasting models behind one interface: `fit(X, y)`, `predict(X)` indexed like X by (date, ticker), save/load.

X holds float feature columns that may contain NaN: LightGBM takes NaN as missing, the other families impute the
training median and standardize with the training mean/std, both stored with the model.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

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
    "num_threads": os.cpu_count() or 1,  # every core
    "deterministic": True,
    "force_col_wise": True,
}
META_FILE = "model.json"
FITTED = {"fitted": True}  # field metadata: learned state, saved by the model itself rather than as config


def select_features(X: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """X's columns in the fitted order, so a model is invariant to the column order it is given."""
    missing = [name for name in names if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks fitted feature(s) {missing}")
    return X[names]


def check_aligned(X: pd.DataFrame, y: pd.Series) -> None:
    """Features and labels must describe the same rows in the same order."""
    if y is None or len(X) != len(y) or not X.index.equals(y.index):
        raise ValueError("features and labels must share one (date, ticker) index")


def check_training_data(X: pd.DataFrame, y: pd.Series) -> None:
    """Refuse what would silently train a broken model: no rows, misaligned or missing labels, all-NaN columns."""
    if len(X) == 0 or X.shape[1] == 0:
        raise ValueError(f"cannot fit on an empty feature matrix (shape {X.shape})")
    check_aligned(X, y)
    if y.isna().any():
        raise ValueError(f"labels contain {int(y.isna().sum())} NaN value(s)")
    empty = [str(name) for name in X.columns[X.isna().all().to_numpy()]]
    if empty:
        raise ValueError(f"feature column(s) {empty} are all NaN in the training rows")


def as_prediction(values: Any, X: pd.DataFrame) -> pd.Series:
    """The common output: one float per row of X, in X's order."""
    return pd.Series(np.asarray(values, dtype=float).reshape(-1), index=X.index, name="prediction")


def read_meta(path: str | Path) -> dict:
    """The JSON every saved model directory starts with (family, config, feature names, state)."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise ValueError(f"{path} holds no saved model ({META_FILE} not found)")
    return json.loads(meta_path.read_text())


class Forecaster:
    """Shared fit checks, prediction alignment and save/load; subclasses are dataclasses, init fields = config."""

    family: ClassVar[str]

    def fit(
        self, X: pd.DataFrame, y: pd.Series, X_valid: pd.DataFrame | None = None, y_valid: pd.Series | None = None
    ) -> Forecaster:
        """Fit on (X, y); X_valid/y_valid (aligned, any column order) drive early stopping where a family has it."""
        check_training_data(X, y)
        if X_valid is not None and len(X_valid):
            check_aligned(X_valid, y_valid)
            X_valid = select_features(X_valid, list(X.columns))
        else:
            X_valid, y_valid = None, None
        self._fit(X, y, X_valid, y_valid)
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """One forecast per row of X, in X's row order; X's extra columns are ignored, its column order is free."""
        return as_prediction(self._predict_values(select_features(X, self.feature_names)), X)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions for each row, plus a `bias` column. Generic (occlusion): a feature's
        contribution is the prediction minus the prediction with that feature missing (every family but LightGBM
        fills a missing value with its training median); `bias` is the prediction with every feature missing.
        LightGBM overrides this with exact SHAP values."""
        names = self.feature_names
        values = select_features(X, names).to_numpy(dtype=float)
        n, k = values.shape
        # per row: the row itself, the row with each feature blanked in turn, the row with all features blanked
        stacked = np.repeat(values[:, None, :], k + 2, axis=1)
        stacked[:, np.arange(1, k + 1), np.arange(k)] = np.nan
        stacked[:, k + 1, :] = np.nan
        frame = pd.DataFrame(stacked.reshape(n * (k + 2), k), columns=names)
        out = np.asarray(self._predict_values(frame), dtype=float).reshape(n, k + 2)
        return pd.DataFrame(
            np.column_stack([out[:, :1] - out[:, 1 : k + 1], out[:, k + 1]]), index=X.index, columns=[*names, "bias"]
        )

    def predict_matrix(self, values: np.ndarray) -> np.ndarray:
        """`predict` for a float matrix whose columns are `feature_names` in that order: the serving path, where
        building and checking a DataFrame costs more than a one-row prediction. Families may skip the frame."""
        frame = pd.DataFrame(values, columns=self.feature_names)
        return np.asarray(self._predict_values(frame), dtype=float).reshape(-1)

    def contributions_matrix(self, values: np.ndarray) -> np.ndarray:
        """`contributions` for such a matrix: one row per input row, the features' columns then the bias."""
        return self.contributions(pd.DataFrame(values, columns=self.feature_names)).to_numpy(dtype=float)

    @property
    def feature_names(self) -> list[str]:
        """The fitted feature columns, in the order the model consumes them."""
        names = self._fitted_features()
        if names is None:
            raise RuntimeError("the model is not fitted")
        return names

    def config(self) -> dict:
        """The constructor arguments that rebuild this model unfitted."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init and not f.metadata.get("fitted")}

    def save(self, path: str | Path) -> Path:
        """Write the model into directory `path` (created if needed): model.json plus the family's own files."""
        directory = Path(path)
        names = self.feature_names
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "config": self.config(), "feature_names": names, "state": self._save(directory)}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Rebuild a model that `save` wrote; the directory must hold this class's family."""
        meta = read_meta(path)
        if meta["family"] != cls.family:
            raise ValueError(f"{path} holds a {meta['family']!r} model, not {cls.family!r}")
        model = cls(**meta["config"])
        model._restore(meta["state"], meta["feature_names"], Path(path))
        return model

    def _fitted_features(self) -> list[str] | None:
        raise NotImplementedError

    def _fit(self, X: pd.DataFrame, y: pd.Series, X_valid: pd.DataFrame | None, y_valid: pd.Series | None) -> None:
        raise NotImplementedError

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _save(self, directory: Path) -> dict:
        raise NotImplementedError

    def _restore(self, state: dict, feature_names: list[str], directory: Path) -> None:
        raise NotImplementedError


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


@dataclass
class Standardizer:
    """Median imputation then (x - mean) / std, all fitted on the training rows only and stored with the model."""

    medians: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @classmethod
    def fit(cls, X: pd.DataFrame) -> Standardizer:
        values = X.to_numpy(dtype=float)
        medians = np.nanmedian(values, axis=0)
        filled = np.where(np.isnan(values), medians, values)
        stds = filled.std(axis=0)
        return cls(medians, filled.mean(axis=0), np.where(stds > 0, stds, 1.0))  # constant column: leave unscaled

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        values = X.to_numpy(dtype=float)
        return (np.where(np.isnan(values), self.medians, values) - self.means) / self.stds

    def to_dict(self) -> dict:
        return {"medians": self.medians.tolist(), "means": self.means.tolist(), "stds": self.stds.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> Standardizer:
        return cls(*(np.asarray(state[key], dtype=float) for key in ("medians", "means", "stds")))


@dataclass
class ColumnForecaster(Forecaster):
    """A model that remembers its fitted feature columns itself (every family but LightGBM)."""

    features: list[str] | None = field(default=None, init=False, repr=False, metadata=FITTED)

    def _fitted_features(self) -> list[str] | None:
        return self.features

    def _restore(self, state: dict, feature_names: list[str], directory: Path) -> None:
        self.features = list(feature_names)
        self._restore_state(state, directory)

    def _restore_state(self, state: dict, directory: Path) -> None:
        raise NotImplementedError


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


class FamilyUnavailableError(ValueError):
    """A model family whose optional dependency is not installed."""


TORCH_MISSING = (
    "the torch_mlp family needs PyTorch, which is not installed: `make install TORCH=cpu` (CPU build) or "
    "`TORCH=cuda` (CUDA build), or `pip install 'stockpred[torch]'`"
)
MODEL_FAMILIES = ("lightgbm", "torch_mlp", "linear", "zero", "momentum")


def torch_available() -> bool:
    """Whether PyTorch imports (it is an optional extra: `make install TORCH=none` leaves it out)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:  # an import hook refused it
        return False


def model_family(family: str) -> type[Forecaster]:
    """The class of `family`; FamilyUnavailableError when its optional dependency (PyTorch) is missing."""
    if family == "torch_mlp":
        if not torch_available():
            raise FamilyUnavailableError(TORCH_MISSING)
        from stockpred_core.models.neural import TorchMLPForecaster  # imports torch: only when asked for

        return TorchMLPForecaster
    classes = {
        "lightgbm": LGBMForecaster,
        "linear": LinearForecaster,
        "zero": ZeroForecaster,
        "momentum": MomentumForecaster,
    }
    if family not in classes:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(MODEL_FAMILIES)}")
    return classes[family]


def load_model(path: str | Path) -> Forecaster:
    """Load a saved model directory of any family (read from its model.json)."""
    family = read_meta(path)["family"]
    if family not in MODEL_FAMILIES:
        raise ValueError(f"{path} holds unknown model family {family!r}; known: {sorted(MODEL_FAMILIES)}")
    return model_family(family).load(path)
