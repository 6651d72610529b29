"""The ensemble family: several model families (and seeds of each) fitted on the same rows, their predictions
averaged as z-scores and mapped back to the label's units.

At fit each member's predictions on the training rows give its mean mu_m and standard deviation sd_m (saved with the
model). A row's prediction is the mean over its members of z_m = (p_m - mu_m) / sd_m, mapped back as
z * mean(sd_m) + mean(mu_m). Standardizing makes members of different scales (a booster's returns, an MLP's) weigh
alike; mapping back keeps the prediction in the members' units (the label's: a return for the "return" label), which
the service's predicted return and price interval read; and a row's prediction depends on that row alone, so it is
the same whether the service scores it alone, in a micro-batch of unrelated requests or in a chunk of tickers. It is
monotone in the mean z, so a date's ranking is the z-average's.

A member whose prediction is NaN for a row is left out of that row's mean; a row with no member left scores NaN. A
member that does not vary on the training rows (sd_m == 0, e.g. the zero family, or a booster that stopped before
its first split) contributes nothing: it is left out of every mean, so adding it changes no prediction. When no
member varies, the ensemble predicts the members' mean mu_m.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from stockpred_core.models.families import load_model, make_forecaster, model_family, torch_available
from stockpred_core.models.forecaster import FITTED, ColumnForecaster, Forecaster


def default_members() -> tuple[str, ...]:
    """A tree model and a neural net; ridge regression in the net's place when PyTorch is not installed."""
    return ("lightgbm", "torch_mlp") if torch_available() else ("lightgbm", "linear")


def z_weights(predictions: np.ndarray, means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, float]:
    """The z-average of member predictions (rows x members) written as `weights @ (p - means) + offset` per row:
    (weights, offset). A member's weight in a row is mean(sd) / (its sd x the row's count of members that vary and
    predict it); 0 for a member that is NaN there or does not vary; NaN across a row with no member left."""
    varying = stds > 0
    known = np.isfinite(predictions)
    if not varying.any():  # every member is a constant: the mean of their constants
        weights = np.zeros(predictions.shape)
        weights[~known.any(axis=1)] = np.nan
        return weights, float(means.mean())
    scored = known & varying
    count = scored.sum(axis=1, keepdims=True)
    scale = stds[varying].mean() / np.where(varying, stds, 1.0)
    weights = np.where(scored, scale / np.maximum(count, 1), 0.0)
    weights[count[:, 0] == 0] = np.nan
    return weights, float(means[varying].mean())


def z_average(predictions: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Per row of member predictions (rows x members), the mean of the members' z-scores (p - means) / stds mapped
    back as z * mean(stds) + mean(means), both means over the members that vary (see `z_weights`)."""
    weights, offset = z_weights(predictions, means, stds)
    deviations = np.where(np.isfinite(predictions), predictions - means, 0.0)
    return (weights * deviations).sum(axis=1) + offset


@dataclass
class EnsembleForecaster(ColumnForecaster):
    """The mean z-score of member models, in their units: each family in `members` fitted once per seed."""

    family: ClassVar[str] = "ensemble"

    members: tuple[str, ...] = field(default_factory=default_members)  # model family names, each listed once
    seeds: int = 1  # each member family that takes a seed is fitted with seed, seed + 1, ..., seed + seeds - 1
    seed: int = 0
    member_params: dict[str, dict] = field(default_factory=dict)  # family -> its constructor arguments
    models: list[Forecaster] = field(default_factory=list, init=False, repr=False, metadata=FITTED)
    means: np.ndarray | None = field(default=None, init=False, repr=False, metadata=FITTED)  # per model, on training
    stds: np.ndarray | None = field(default=None, init=False, repr=False, metadata=FITTED)  # rows: mu_m and sd_m

    def __post_init__(self) -> None:
        self.members = tuple(self.members)  # a saved config comes back from JSON as a list
        for name in self.members:
            model_family(name)  # an unknown family (or one whose dependency is missing) is refused here
        if not self.members or len(set(self.members)) != len(self.members):
            raise ValueError(f"members must name each model family once (seeds repeats them), not {self.members}")
        strays = sorted(set(self.member_params) - set(self.members))
        if strays:
            raise ValueError(f"member_params for {strays}, which are not members {list(self.members)}")
        seeded = sorted(name for name, params in self.member_params.items() if "seed" in params)
        if seeded:
            raise ValueError(f"member_params of {seeded} set a seed: the ensemble's seed and seeds set every member's")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, not {self.seeds}")

    def member_models(self) -> list[Forecaster]:
        """Unfitted members: one per family, times `seeds` for the families that take a seed."""
        models = []
        for name in self.members:
            takes_seed = any(f.name == "seed" and f.init for f in fields(model_family(name)))
            for offset in range(self.seeds if takes_seed else 1):
                models.append(make_forecaster(name, self.member_params.get(name), self.seed + offset))
        return models

    def _fit(self, X, y, X_valid, y_valid) -> None:
        self.models = [model.fit(X, y, X_valid, y_valid) for model in self.member_models()]
        on_training = self._member_predictions(X)
        self.means = np.nanmean(on_training, axis=0)
        # exactly 0 for a constant member (its std can come out as a rounding error of the mean otherwise)
        spread = np.nanmax(on_training, axis=0) > np.nanmin(on_training, axis=0)
        self.stds = np.where(spread, np.nanstd(on_training, axis=0), 0.0)
        self.features = list(X.columns)

    def _member_predictions(self, X: pd.DataFrame) -> np.ndarray:
        """Rows x models: each member's prediction."""
        return np.column_stack([model.predict(X).to_numpy() for model in self.models])

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        return z_average(self._member_predictions(X), self.means, self.stds)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The members' contributions weighted as their predictions are (a feature a member does not read
        contributes 0 to it); `bias` also takes the offset and the members' means. They sum to the prediction
        where every member's do (LightGBM's SHAP values, the linear and baseline families)."""
        columns = [*self.feature_names, "bias"]
        weights, offset = z_weights(self._member_predictions(X), self.means, self.stds)
        total = np.zeros((len(X), len(columns)))
        for m, model in enumerate(self.models):
            parts = model.contributions(X).reindex(columns=columns, fill_value=0.0).to_numpy(dtype=float)
            parts[:, -1] -= self.means[m]
            w = weights[:, m : m + 1]
            total += np.where(w == 0, 0.0, w * parts)  # a member left out of a row adds nothing there, not NaN
        total[:, -1] += offset
        return pd.DataFrame(total, index=X.index, columns=columns)

    def to_device(self, device: str) -> EnsembleForecaster:
        """Move the members that have a network (the PyTorch families) to `device`; the others run on the CPU."""
        for model in self.models:
            if hasattr(model, "to_device"):
                model.to_device(device)
        return self

    def _save(self, directory: Path) -> dict:
        names = [f"{i:02d}_{model.family}" for i, model in enumerate(self.models)]
        for name, model in zip(names, self.models, strict=True):
            model.save(directory / name)
        return {"members": names, "means": self.means.tolist(), "stds": self.stds.tolist()}

    def _restore_state(self, state: dict, directory: Path) -> None:
        self.models = [load_model(directory / name) for name in state["members"]]
        self.means = np.asarray(state["means"], dtype=float)
        self.stds = np.asarray(state["stds"], dtype=float)
