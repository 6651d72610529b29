"""The served models: the registry's champion (and, for shadow scoring, its challenger), swapped atomically.

`ModelManager.check()` asks the registry which version holds the alias and loads a new one beside the old, warms it
up, then replaces the reference in one assignment: a request holds the `ServedModel` it started with, so a swap
under traffic fails nothing. No HTTP and no Dagster here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from stockpred_core.io.model_card import CHALLENGER_ALIAS, CHAMPION_ALIAS, ModelCard, read_model_card
from stockpred_core.io.model_registry import load_version, use_registry
from stockpred_core.models.forecaster import Forecaster
from stockpred_core.redaction import redact
from stockpred_core.settings import Settings

logger = logging.getLogger("bentoml.stockpred")
TOP_CONTRIBUTIONS = 5
INTERVAL_LEVEL = 0.9  # the interval spans the 5% and 95% quantiles of the model's held-out residuals


class NoModel(RuntimeError):
    pass


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
    def device(self) -> str:
        network = getattr(self.model, "network", None)
        if network is not None:
            try:
                return str(next(network.parameters()).device)
            except StopIteration:
                pass
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
                raise MissingFeatures(
                    f"model {self.name} v{self.version} needs features the online store lacks: {missing[:5]}"
                )
            found = self._index[columns] = np.array([position[f] for f in self.feature_names], dtype=np.intp)
        return found

    def warm_up(self) -> None:
        """One prediction and explanation before serving, so the first request pays no lazy initialisation."""
        values = np.zeros((1, len(self.feature_names)))
        self.model.predict_matrix(values)
        self.model.contributions_matrix(values)


class ModelManager:
    """Holds the champion (and the challenger when shadow scoring is on); `check` follows the registry aliases."""

    def __init__(self, settings: Settings, on_swap=None) -> None:
        self.settings = settings
        self.shadow_enabled = settings.service.shadow_scoring
        self.current: ServedModel | None = None
        self.challenger: ServedModel | None = None
        self.error: str | None = None
        self.on_swap = on_swap  # (role, old, new) -> None
        self._lock = threading.Lock()

    def _load(self, card: ModelCard) -> ServedModel:
        """The version of `card` loaded and warmed up (the mlflow module points at the registry: see `check`)."""
        served = ServedModel(card, load_version(card.name, card.version))
        served.warm_up()
        return served

    def check(self) -> bool:
        """Load the version holding the champion alias if it is not the one served; True when the model changed.
        Errors (registry unreachable, a broken version) keep the served model and are reported by readiness."""
        with self._lock:
            name = self.settings.registered_model
            try:
                client = use_registry(self.settings.mlflow_tracking_uri)
                card = read_model_card(client, name, CHAMPION_ALIAS)
                if card is None:
                    self.error = f"no champion model in the registry for {name} yet"
                    return False
                changed = False
                if self.current is None or card.version != self.current.version:
                    served = self._load(card)
                    old, self.current = self.current, served
                    changed = True
                    logger.info("serving %s v%s (%s) on %s", name, served.version, served.family, served.device)
                    if self.on_swap:
                        self.on_swap("champion", old, served)
                if self.shadow_enabled:
                    self._check_challenger(client, name)
                self.error = None
                return changed
            except Exception as exc:  # the registry or an artifact store away: keep serving what we have
                # `error` reaches answers (/readyz, a 503): the cause, which may name paths, hosts or credentials
                # of the registry, goes to the log only
                self.error = f"cannot load the champion of {name} from the model registry (see the service log)"
                logger.warning("cannot load the champion of %s: %s", name, redact(f"{type(exc).__name__}: {exc}"))
                return False

    def _check_challenger(self, client, name: str) -> None:
        card = read_model_card(client, name, CHALLENGER_ALIAS)
        wanted = None if card is None or card.version == self.current.version else card
        have = self.challenger.version if self.challenger else None
        if (wanted.version if wanted else None) == have:
            return
        served = self._load(wanted) if wanted is not None else None
        old, self.challenger = self.challenger, served
        if self.on_swap:
            self.on_swap("challenger", old, served)
