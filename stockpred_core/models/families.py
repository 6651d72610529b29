"""The model families by name: which class a family is, whether its optional dependency is installed, building an
unfitted model of a family from its parameters, and loading a saved model directory of any family (the family is read
from its model.json, so classes may move between modules)."""

from __future__ import annotations

import importlib.util
from dataclasses import fields
from pathlib import Path

from stockpred_core.models.baselines import LinearForecaster, MomentumForecaster, ZeroForecaster
from stockpred_core.models.forecaster import Forecaster, read_meta
from stockpred_core.models.lgbm import LGBMForecaster


class FamilyUnavailableError(ValueError):
    """A model family whose optional dependency is not installed."""


TORCH_FAMILIES = ("torch_mlp", "gru")
TORCH_MISSING = (
    "the torch_mlp and gru families need PyTorch, which is not installed: `make install TORCH=cpu` (CPU build) or "
    "`TORCH=cuda` (CUDA build), or `pip install 'stockpred[torch]'`"
)
MODEL_FAMILIES = ("lightgbm", "torch_mlp", "linear", "zero", "momentum", "ensemble", "gru")


def torch_available(module: str = "torch") -> bool:
    """Whether PyTorch (or `module`) imports: an optional extra that `make install TORCH=none` leaves out."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook refused it
        return False


def model_family(family: str) -> type[Forecaster]:
    """The class of `family`; FamilyUnavailableError when its optional dependency (PyTorch) is missing."""
    if family in TORCH_FAMILIES and not torch_available():
        raise FamilyUnavailableError(TORCH_MISSING)
    if family == "torch_mlp":
        from stockpred_core.models.neural import TorchMLPForecaster  # imports torch: only when asked for

        return TorchMLPForecaster
    if family == "gru":
        from stockpred_core.models.sequence import GRUForecaster  # imports torch: only when asked for

        return GRUForecaster
    if family == "ensemble":
        from stockpred_core.models.ensemble import EnsembleForecaster  # it builds its members through this module

        return EnsembleForecaster
    classes = {
        "lightgbm": LGBMForecaster,
        "linear": LinearForecaster,
        "zero": ZeroForecaster,
        "momentum": MomentumForecaster,
    }
    if family not in classes:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(MODEL_FAMILIES)}")
    return classes[family]


def make_forecaster(family: str, params: dict | None = None, seed: int = 0) -> Forecaster:
    """An unfitted model of `family` configured by `params` (its constructor arguments) and seeded where it can be."""
    cls = model_family(family)
    params = dict(params or {})
    accepted = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"{family} takes no parameter(s) {unknown}; it takes {sorted(accepted)}")
    if "seed" in accepted:
        params.setdefault("seed", seed)
    return cls(**params)


def load_model(path: str | Path) -> Forecaster:
    """Load a saved model directory of any family (read from its model.json)."""
    family = read_meta(path)["family"]
    if family not in MODEL_FAMILIES:
        raise ValueError(f"{path} holds unknown model family {family!r}; known: {sorted(MODEL_FAMILIES)}")
    return model_family(family).load(path)
