"""The champion the worker scores with: the registry's version under the champion alias, loaded as the service loads
it (`stockpred_core.serving.model.load_served`), and checked again every `poll_s`; a promotion is followed within that
time by the worker and by the service alike."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from stockpred_core.io.model_card import CHAMPION_ALIAS, read_model_card
from stockpred_core.io.model_registry import use_registry
from stockpred_core.redaction import redact
from stockpred_core.serving.model import ServedModel, load_served

logger = logging.getLogger("stockpred.stream")


class Champion:
    def __init__(
        self,
        tracking_uri: str,
        name: str,
        *,
        poll_s: float = 30.0,
        device: str = "auto",  # where a PyTorch champion scores (STOCKPRED_MODEL_DEVICE, as in the service)
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracking_uri, self.name, self.poll_s, self.clock = tracking_uri, name, poll_s, clock
        self.device = device
        self.served: ServedModel | None = None
        self.error: str | None = None
        self._checked: float | None = None

    def current(self) -> ServedModel | None:
        """The served version (checking the alias when `poll_s` has passed); None while the registry has none."""
        now = self.clock()
        if self._checked is None or now - self._checked >= self.poll_s:
            self._checked = now
            self.check()
        return self.served

    def check(self) -> bool:
        """Follow the alias now; True when the version changed. A registry error keeps the loaded version."""
        try:
            card = read_model_card(use_registry(self.tracking_uri), self.name, CHAMPION_ALIAS)
            if card is None:
                self.error = f"no champion model in the registry for {self.name} yet"
                return False
            if self.served is not None and self.served.version == card.version:
                self.error = None
                return False
            self.served = load_served(card, self.device)
            self.error = None
            logger.info("scoring with %s v%s (%s)", self.name, card.version, card.family)
            return True
        except Exception as exc:  # the registry away, a broken artifact: keep scoring with what we have
            self.error = f"cannot load the champion of {self.name} (see the worker log)"
            logger.warning("cannot load the champion of %s: %s", self.name, redact(f"{type(exc).__name__}: {exc}"))
            return False
