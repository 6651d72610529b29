"""The interface every forecaster implements: `fit(X, y)`, `predict(X)` indexed like X by (date, ticker), per-row
contributions, save/load to a directory whose model.json names the family (`families.load_model` reads it).

X holds float feature columns that may contain NaN: LightGBM takes NaN as missing, the other families impute the
training median and standardize with the training mean/std, both stored with the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from stockpred_core.features.alternative_catalog import ALT_REGISTRY

META_FILE = "model.json"
# Alternative values (not their masks): NaN wherever their source does not cover a ticker and day.
MAY_BE_UNCOVERED = frozenset(spec.name for spec in ALT_REGISTRY if not spec.name.endswith("_covered"))
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
    """Refuse what would silently train a broken model: no rows, misaligned or missing labels, all-NaN columns
    (except alternative values: a source's coverage may begin after a fold's training rows end, and each family's
    `<family>_covered` mask says so; LightGBM takes them as missing, the other families impute them as 0)."""
    if len(X) == 0 or X.shape[1] == 0:
        raise ValueError(f"cannot fit on an empty feature matrix (shape {X.shape})")
    check_aligned(X, y)
    if y.isna().any():
        raise ValueError(f"labels contain {int(y.isna().sum())} NaN value(s)")
    empty = [str(name) for name in X.columns[X.isna().all().to_numpy()] if name not in MAY_BE_UNCOVERED]
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
