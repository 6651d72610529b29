"""Median imputation and standardization fitted on the training rows, for the families that need scaled inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Standardizer:
    """Median imputation then (x - mean) / std, all fitted on the training rows only and stored with the model.

    A column without any value in the training rows (an alternative source that covered none of them) is `unseen`:
    it is always transformed to 0, so values it takes later cannot reach weights that never learned from it."""

    medians: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    unseen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def fit(cls, X: pd.DataFrame) -> Standardizer:
        values = X.to_numpy(dtype=float)
        unseen = np.isnan(values).all(axis=0)
        medians = np.zeros(values.shape[1])
        medians[~unseen] = np.nanmedian(values[:, ~unseen], axis=0)
        filled = np.where(np.isnan(values), medians, values)
        stds = filled.std(axis=0)
        return cls(medians, filled.mean(axis=0), np.where(stds > 0, stds, 1.0), unseen)  # constant: unscaled

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.transform_matrix(X.to_numpy(dtype=float))

    def transform_matrix(self, values: np.ndarray) -> np.ndarray:
        """`transform` of a float matrix whose columns are the fitted ones, in order (the serving path)."""
        values = np.asarray(values, dtype=float)
        scaled = (np.where(np.isnan(values), self.medians, values) - self.means) / self.stds
        if self.unseen.any():
            scaled[:, self.unseen] = 0.0
        return scaled

    def missing(self) -> np.ndarray:
        """What a missing value of each column becomes: its scaled median (0 for an unseen column)."""
        return self.transform_matrix(np.full((1, len(self.medians)), np.nan))[0]

    def to_dict(self) -> dict:
        state = {"medians": self.medians.tolist(), "means": self.means.tolist(), "stds": self.stds.tolist()}
        return state | ({"unseen": self.unseen.tolist()} if self.unseen.any() else {})

    @classmethod
    def from_dict(cls, state: dict) -> Standardizer:
        medians, means, stds = (np.asarray(state[key], dtype=float) for key in ("medians", "means", "stds"))
        return cls(medians, means, stds, np.asarray(state.get("unseen", [False] * len(medians)), dtype=bool))
