"""The served models: the registry's champion (and, for shadow scoring, its challenger), swapped atomically.

`ModelManager.check()` asks the registry which version holds the alias and loads a new one beside the old, warms it
up, then replaces the reference in one assignment: a request holds the `ServedModel` it started with, so a swap
under traffic fails nothing. No HTTP and no Dagster here.
"""

from __future__ import annotations

import logging
import threading

from stockpred_core.io.model_card import CHALLENGER_ALIAS, CHAMPION_ALIAS, ModelCard, read_model_card
from stockpred_core.io.model_registry import use_registry
from stockpred_core.redaction import redact
from stockpred_core.serving.model import INTERVAL_LEVEL, TOP_CONTRIBUTIONS, MissingFeatures, ServedModel, load_served
from stockpred_core.settings import Settings

logger = logging.getLogger("bentoml.stockpred")

__all__ = ["INTERVAL_LEVEL", "TOP_CONTRIBUTIONS", "MissingFeatures", "ModelManager", "NoModel", "ServedModel"]


class NoModel(RuntimeError):
    pass


class ModelManager:
    """Holds the champion (and the challenger when shadow scoring is on); `check` follows the registry aliases."""

    def __init__(self, settings: Settings, on_swap=None) -> None:
        self.settings = settings
        self.shadow_enabled = settings.service.shadow_scoring
        # the challenger is loaded for shadow scoring and for a canary (bento.canary may turn this on at run time)
        self.follow_challenger = self.shadow_enabled
        self.current: ServedModel | None = None
        self.challenger: ServedModel | None = None
        self.error: str | None = None
        self.on_swap = on_swap  # (role, old, new) -> None
        self._lock = threading.Lock()

    def _load(self, card: ModelCard) -> ServedModel:
        """The version of `card` loaded and warmed up (the mlflow module points at the registry: see `check`)."""
        return load_served(card, self.settings.service.model_device)

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
                if self.follow_challenger:
                    self._check_challenger(client, name)
                self.error = None
                return changed
            except Exception as exc:  # the registry or an artifact store away: keep serving what we have
                # `error` reaches answers (/readyz, a 503): the cause, which may name paths, hosts or credentials
                # of the registry, goes to the log only
                self.error = f"cannot load the champion of {name} from the model registry (see the service log)"
                logger.warning("cannot load the champion of %s: %s", name, redact(f"{type(exc).__name__}: {exc}"))
                return False

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        """Set tags on a version of the registered model (the canary's rollback, say)."""
        client = use_registry(self.settings.mlflow_tracking_uri)
        for key, value in tags.items():
            client.set_model_version_tag(self.settings.registered_model, version, key, value)

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
