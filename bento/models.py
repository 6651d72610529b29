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
from mlflow.tracking import MlflowClient

from stockpred_core.io.model_registry import (
    CHALLENGER_ALIAS,
    alias_version,
    champion_version,
    load_champion,
    load_version,
)
from stockpred_core.models.forecasters import Forecaster
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
    name: str
    version: str
    family: str
    model: Forecaster
    horizon: int
    label: str = "return"
    residual_q05: float = 0.0
    residual_q95: float = 0.0
    feature_set_version: str | None = None
    run_id: str | None = None
    feature_names: list[str] = field(default_factory=list)
    _index: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.feature_names = list(self.model.feature_names)

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


def _served(champion) -> ServedModel:
    return ServedModel(
        name=champion.name,
        version=champion.version,
        family=champion.family,
        model=champion.model,
        horizon=champion.horizon,
        label=champion.label,
        residual_q05=champion.residual_q05,
        residual_q95=champion.residual_q95,
        feature_set_version=champion.feature_set_version,
        run_id=champion.run_id,
    )


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

    def _client(self) -> MlflowClient:
        uri = self.settings.mlflow_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def check(self) -> bool:
        """Load the version holding the champion alias if it is not the one served; True when the model changed.
        Errors (registry unreachable, a broken version) keep the served model and are reported by readiness."""
        with self._lock:
            name = self.settings.registered_model
            try:
                client = self._client()
                version = champion_version(client, name)
                if version is None:
                    self.error = f"no champion model in the registry for {name} yet"
                    return False
                changed = False
                if self.current is None or str(version.version) != self.current.version:
                    champion = load_champion(self.settings.mlflow_tracking_uri, name)
                    if champion is None:
                        self.error = f"no champion model in the registry for {name} yet"
                        return False
                    served = _served(champion)
                    served.warm_up()
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

    def _check_challenger(self, client: MlflowClient, name: str) -> None:
        version = alias_version(client, name, CHALLENGER_ALIAS)
        wanted = None if version is None or str(version.version) == self.current.version else str(version.version)
        have = self.challenger.version if self.challenger else None
        if wanted == have:
            return
        served = None
        if wanted is not None:
            run = client.get_run(version.run_id)
            served = ServedModel(
                name=name,
                version=wanted,
                family=run.data.tags.get("model_family", "lightgbm"),
                model=load_version(name, version),
                horizon=int(run.data.params.get("horizon", self.current.horizon)),
                label=run.data.params.get("label", "return"),
                feature_set_version=run.data.params.get("feature_set_version"),
                run_id=version.run_id,
            )
            served.warm_up()
        old, self.challenger = self.challenger, served
        if self.on_swap:
            self.on_swap("challenger", old, served)
