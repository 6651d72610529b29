"""A registered model version as the platform serves it: its model card and its forecaster, loaded once and warmed
up. The service's champion and the stream worker's scorer are the same object (`load_served`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stockpred_core.features.catalog import LIBRARY_SET
from stockpred_core.io.model_card import ModelCard
from stockpred_core.models.forecaster import Forecaster

TOP_CONTRIBUTIONS = 5
INTERVAL_LEVEL = 0.9  # the interval spans the 5% and 95% quantiles of the model's held-out residuals


class MissingFeatures(LookupError):
    pass


@dataclass
class ServedModel:
    """A loaded version: its model card (what the registry records about it) and its forecaster."""

    card: ModelCard
    model: Forecaster
    feature_names: list[str] = field(default_factory=list)
    _index: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.feature_names = list(self.model.feature_names)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def run_id(self) -> str:
        return self.card.run_id

    @property
    def family(self) -> str:
        return self.card.family

    @property
    def horizon(self) -> int:
        return self.card.horizon

    @property
    def label(self) -> str:
        return self.card.label

    @property
    def feature_set_version(self) -> str | None:
        return self.card.feature_set_version

    @property
    def residual_q05(self) -> float:
        return self.card.residual_q05

    @property
    def residual_q95(self) -> float:
        return self.card.residual_q95

    @property
    def takes_library(self) -> bool:
        """Whether the model takes columns of the Alpha158-like library."""
        return not LIBRARY_SET.isdisjoint(self.feature_names)

    @property
    def device(self) -> str:
        """Where the model's network scores ("cpu", "cuda:0"); an ensemble's: its first member with a network."""
        for model in getattr(self.model, "models", None) or [self.model]:
            network = getattr(model, "network", None)
            if network is not None:
                return str(next(network.parameters()).device)
        return "cpu"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "family": self.family,
            "label": self.label,
            "horizon_sessions": self.horizon,
            "feature_set_version": self.feature_set_version,
            "device": self.device,
        }

    def index_for(self, columns: tuple[str, ...]) -> np.ndarray:
        """Positions of the model's features in a vector laid out as `columns` (memoized per layout)."""
        found = self._index.get(columns)
        if found is None:
            position = {c: i for i, c in enumerate(columns)}
            missing = [f for f in self.feature_names if f not in position]
            if missing:
                why = (
                    " (the stream writes the Alpha158-like library only while STOCKPRED_FEATURE_FAMILIES names "
                    "alpha158 or its champion takes it)"
                    if LIBRARY_SET.intersection(missing)
                    else ""
                )
                raise MissingFeatures(
                    f"model {self.name} v{self.version} needs features the online store lacks: {missing[:5]}{why}"
                )
            found = self._index[columns] = np.array([position[f] for f in self.feature_names], dtype=np.intp)
        return found

    def warm_up(self) -> None:
        """One prediction and explanation before serving, so the first request pays no lazy initialisation."""
        values = np.zeros((1, len(self.feature_names)))
        self.model.predict_matrix(values)
        self.model.contributions_matrix(values)


def load_served(card: ModelCard, device: str = "auto") -> ServedModel:
    """The version of `card` loaded from the registry (mlflow must point at it: `use_registry`), placed and warmed
    up. `device`: where a PyTorch model scores ("auto": CUDA when torch sees a GPU; "cuda" without one is an error);
    the other families score on the CPU."""
    from stockpred_core.io.model_registry import load_version  # MLflow: only where a version is read from it

    return place(ServedModel(card, load_version(card.name, card.version)), device)


def place(served: ServedModel, device: str = "auto") -> ServedModel:
    """`served` with its network (if it has one) moved to `device`, then warmed up there."""
    to_device = getattr(served.model, "to_device", None)
    if to_device is not None:
        to_device(device)
    served.warm_up()
    return served
