"""Median imputation and standardization fitted on the training rows, for the families that need scaled inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


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
