"""The names of the Redis keys answers live under: cached answers (the service and the stream worker write them),
their compute locks, the reload signal."""

from __future__ import annotations

CACHE_PREFIX = "stockpred:pred:"
LOCK_PREFIX = "stockpred:lock:"
RELOAD_KEY = "stockpred:control:reload"


def cache_prefix(model_name: str, version: str, horizon: int) -> str:
    return f"{CACHE_PREFIX}{model_name}:{version}:h{horizon}:"


def lock_name(prefix: str, ticker: str, date: str) -> str:
    """The answer's identity without its explained/plain suffix (what the lookup script locks)."""
    return f"{prefix}{ticker}:{date}"


def answer_suffix(explained: bool) -> str:
    """What ends an answer's key: `:x` with contributions, `:p` without."""
    return ":x" if explained else ":p"


def cache_key(prefix: str, ticker: str, date: str, explained: bool) -> str:
    """`<prefix><ticker>:<date>` and the suffix; `date` is `date@as_of` for an intraday answer."""
    return f"{lock_name(prefix, ticker, date)}{answer_suffix(explained)}"
