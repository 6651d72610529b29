"""What changes per response (cached, where the features came from, staleness), prepended to a cached answer.

A cached answer is JSON bytes without these fields, so a cache hit never parses nor re-serializes JSON: the head
for a (cached, source, feature date) is built once and reused until the clock or the latest data moves on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from bento.features import StalenessClock

HEAD_TTL_S = 60  # feature ages move with the clock: heads are rebuilt at least this often


class AnswerHeads:
    def __init__(self, max_age_sessions: int, latest_date: Callable[[], str | None]) -> None:
        self.max_age_sessions = max_age_sessions
        self.latest_date = latest_date
        self.clock = StalenessClock()
        self._heads: dict[tuple[bool, str, str, str], tuple[bytes, bool]] = {}
        self._built_at, self._latest = 0.0, None

    def finish(self, doc: bytes, cached: bool, source: str, date: str, variant: str = "champion") -> tuple[bytes, bool]:
        """(the answer with its head, whether it is stale)."""
        head, stale = self.head(cached, source, date, variant)
        return head + doc[1:], stale

    def head(self, cached: bool, source: str, date: str, variant: str = "champion") -> tuple[bytes, bool]:
        latest = self.latest_date()
        now = time.monotonic()
        if now - self._built_at > HEAD_TTL_S or latest != self._latest:
            self._heads, self._built_at, self._latest = {}, now, latest
        found = self._heads.get((cached, source, date, variant))
        if found is not None:
            return found
        age = self.clock.age(date)
        reason = None
        if latest and date < latest:
            reason = f"features dated {date}, the latest online features are dated {latest}"
        elif age is not None and age > self.max_age_sessions:
            reason = f"features are {age} sessions old (more than {self.max_age_sessions})"
        head = orjson.dumps(
            {
                "cached": cached,
                "features_source": source,
                "stale": reason is not None,
                "stale_reason": reason,
                "feature_age_sessions": age,
                "variant": variant,
            }
        )
        found = self._heads[(cached, source, date, variant)] = (head[:-1] + b",", reason is not None)
        return found
