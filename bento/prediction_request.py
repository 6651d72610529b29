"""A prediction request's limits (what the champion serves, how many tickers, how many explained) and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from bento.models import ModelManager, NoModel, ServedModel
from stockpred_core.settings import Settings


class RequestError(ValueError):
    """A request the service understood but cannot serve (HTTP status with it)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Outcome:
    """Per ticker, the answer's JSON bytes or an (HTTP status, message) error, in request order."""

    served: ServedModel
    tickers: list[str]
    answers: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    uncached: int = 0
    stale: int = 0
    variant: str = "champion"  # or "canary": the challenger answered (bento.canary)

    @property
    def failed(self) -> bool:
        """Whether the model side failed for any ticker (a 5xx), as opposed to the client's (an unknown ticker)."""
        return any(status >= 500 for status, _ in self.errors.values())


def check_request(
    models: ModelManager,
    settings: Settings,
    tickers: list[str],
    horizon: int | None,
    explain: bool,
    served: ServedModel | None = None,
) -> ServedModel:
    """The model that answers (`served`, else the champion), or NoModel (503) / RequestError (4xx) with a reason the
    client can act on."""
    served, config = served or models.current, settings.service
    if served is None:
        raise NoModel(models.error or f"no champion model for {settings.registered_model} yet")
    if horizon is not None and horizon != served.horizon:
        raise RequestError(
            422,
            f"horizon {horizon} is not served: the champion ({served.name} v{served.version}) forecasts "
            f"{served.horizon} sessions ahead; send horizon {served.horizon} or leave it out",
        )
    if len(tickers) > config.max_batch_tickers:
        raise RequestError(413, f"{len(tickers)} tickers: at most {config.max_batch_tickers} per request")
    if explain and len(tickers) > config.max_explain_tickers:
        raise RequestError(
            422,
            f"explanations are limited to {config.max_explain_tickers} tickers per request "
            f"(got {len(tickers)}): send explain=false or split the request",
        )
    return served
