"""The intraday handler: a batch of bars -> the intraday store -> running session bars -> features -> the champion's
predictions -> the online store, the service's cache and the events stream (and alerts), in that order.

What a batch changes is written in one Redis transaction after the bars were applied, then the worker acknowledges
the batch. A crash between the two loses nothing: the restarted worker rebuilds the running bars from the store
(which holds every bar applied before the crash), refreshes every ticker that traded this session, and finds the
redelivered bars duplicates.

Intraday rows are the daily model's rows of the session as if it closed now (`stockpred_core.features.intraday`),
keyed in the service's cache by date and time (`date@as_of`), so `POST /predict` answers the newest refresh and never
a prediction older than the features. Cross-sectional features (ranks, z-scores, the sector mean and an equal-weight
market) need every ticker of the universe, so the prediction handler runs in one worker process over all shards.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from stockpred_core.alerts import Alerts
from stockpred_core.data import calendar
from stockpred_core.dataset.training_set import ALT_TABLE, alt_vectors, combined_version
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION, covers
from stockpred_core.features.catalog import FEATURE_SET_VERSION, LIBRARY_COLUMNS, REQUIRED_FEATURES
from stockpred_core.features.intraday import IntradayFeatures
from stockpred_core.io.lake import Lake
from stockpred_core.io.online_store import IntradayWriter
from stockpred_core.io.stream_events import add_event, prediction_fields
from stockpred_core.serving.answers import score
from stockpred_core.serving.keys import answer_suffix, cache_prefix
from stockpred_core.serving.model import ServedModel
from stockpred_core.serving.rows import FeatureRow
from stream.bars import Bar
from stream.champion import Champion
from stream.history import LakeHistory
from stream.session import RunningBars, SessionClock
from stream.worker import APPLIED, IntradayStore

logger = logging.getLogger("stockpred.stream")

SCORE_CHUNK = 2048  # rows per model call
COMBINED_VERSION = combined_version(FEATURE_SET_VERSION, ALT_FEATURE_SET_VERSION)


@dataclass(frozen=True)
class SessionAlt:
    """The alternative rows a session's vectors take: the lake's newest alt_features day before the session (the
    session's own row needs its close), as ALT_COLUMNS rows of the session's universe."""

    date: pd.Timestamp
    rows: dict[str, np.ndarray]  # ticker -> ALT_COLUMNS values (NaN and masks 0 for a ticker the day lacks)

    def matrix(self, tickers: list[str]) -> np.ndarray:
        return np.stack([self.rows[t] for t in tickers])


class LakeAltFeatures:
    """Reads the alt_features rows a session takes from the lake (once per session roll)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def __call__(self, session: dt.date, tickers: list[str]) -> SessionAlt | None:
        """None when the lake holds no alt_features day before `session`; ValueError when its rows are unusable."""
        day = pd.Timestamp(session)
        before = [d for d in self.lake.partition_dates(*ALT_TABLE) if d < day]
        if not before:
            return None
        newest = before[-1]
        previous = calendar.previous_sessions(day, 1)
        if len(previous) and newest < previous[-1]:
            logger.warning(
                "the newest alt_features day before %s is %s, not the session before (%s): its rows are used",
                session,
                f"{newest:%Y-%m-%d}",
                f"{previous[-1]:%Y-%m-%d}",
            )
        frame = self.lake.read_range(*ALT_TABLE, newest, newest)
        values = alt_vectors(frame, tickers)
        return SessionAlt(newest, dict(zip(tickers, values, strict=True)))


class PredictionHandler:
    """Applies bars to the intraday store and refreshes the features and predictions of the tickers they moved."""

    def __init__(
        self,
        client: redis.Redis,
        store: IntradayStore,
        history: Callable[[dt.date], IntradayFeatures | None],
        champion: Champion | None,
        *,
        alerts: Alerts | None = None,
        cache_ttl_s: int = 3600,
        explain: bool = False,
        clock: Callable[[], float] = time.time,
        alt: Callable[[dt.date, list[str]], SessionAlt | None] | None = None,
        library: bool = False,
    ) -> None:
        """`alt` reads the alternative rows of a session (for a champion trained on them); by default from the
        lake the history reads. `library`: compute the Alpha158-like library's columns all along (the settings'
        feature families name it); otherwise only while the champion takes them, NaN else."""
        self.client, self.store, self.history, self.champion = client, store, history, champion
        if alt is None and isinstance(history, LakeHistory):
            alt = LakeAltFeatures(history.lake)
        self.alt_reader = alt
        self.library = library
        self.alt: SessionAlt | None = None
        self.alt_error: str | None = None
        self.writer = IntradayWriter(client)
        self.explain = explain  # contributions cost LightGBM ~50x a prediction: the service adds them on demand
        self.alerts = alerts
        self.cache_ttl_s, self.clock = cache_ttl_s, clock
        self.sessions = SessionClock()
        self.features: IntradayFeatures | None = None
        self.running: RunningBars | None = None
        self.universe: set[str] = set()
        self.own: Counter[str] = Counter(
            {"refreshed": 0, "predicted": 0, "alerts": 0, "late_bars": 0, "warming_up": 0, "unknown_tickers": 0}
        )
        self._unknown: set[str] = set()
        self._dirty: set[str] = set()  # tickers whose refreshed features have not reached Redis yet
        self._refused: tuple[str, str] | None = None  # (champion version, reason) last logged
        self.last_refresh_s: float = math.nan  # seconds the last refresh took (features, scoring, writes)

    @property
    def counts(self) -> dict[str, int]:
        """The store's counts (applied, duplicates, out_of_order) and this handler's."""
        return {**self.store.counts, **self.own, "refresh_seconds": self.last_refresh_s}

    def handle(self, bars: list[Bar]) -> None:
        if self.running is None and bars:  # the first batch since the start: its session as the store holds it
            self.refresh(self._begin(min(self.sessions.session_of(bar.ts) for bar in bars), rebuild=True))
        kinds = self.store.apply(bars)
        by_session: dict[dt.date, list[Bar]] = {}
        for bar, kind in zip(bars, kinds, strict=True):
            if kind == APPLIED:
                by_session.setdefault(self.sessions.session_of(bar.ts), []).append(bar)
        for session in sorted(by_session):
            changed: set[str] = set()
            if self.running is None or session > self.running.session:
                changed = self._begin(session, rebuild=False)
            elif session < self.running.session:
                self.own["late_bars"] += len(by_session[session])  # stored, but the features moved on
                continue
            for bar in by_session[session]:
                if self.running.add(bar):  # a pre-market bar makes no running bar yet
                    changed.add(bar.ticker)
            self.refresh(changed)
        if self._dirty:  # the writes of an earlier batch failed and it came again: its bars are duplicates now
            self.refresh(())

    def _begin(self, session: dt.date, rebuild: bool) -> set[str]:
        """Start `session`: the lake's warm start when it holds the session before, else the previous session's
        running bars committed as its daily bars; with `rebuild` (the first batch since the worker started, before
        it is applied), the session's bars already in the store: a restart refreshes them."""
        fresh = self.history(session)
        if fresh is not None:
            self.features = fresh
        elif self.features is not None and self.running is not None:
            logger.warning(
                "rolling to %s on the intraday bars of %s (the lake has no daily bars for it)",
                session,
                self.running.session,
            )
            self.features.start_session(session)
        else:
            logger.error("no daily history before %s in the lake: bars are stored, features wait for history", session)
            self.features = None
        if self.features is not None and fresh is not None:
            self.features.start_session(session)
        self.universe = set(self.features.tickers) if self.features is not None else set()
        self._read_alt(session)
        self.running = RunningBars(session)
        found = self.running.rebuild(self.store, sorted(self.universe), self.sessions) if rebuild else []
        if found:
            logger.info(
                "session %s: %d tickers already have bars in the store (a restart): refreshing them",
                session,
                len(found),
            )
        return set(found)

    def _read_alt(self, session: dt.date) -> None:
        self.alt, self.alt_error = None, None
        if self.alt_reader is None:
            self.alt_error = "no alternative feature source is configured"
            return
        if not self.universe:
            self.alt_error = f"no daily history before {session}"
            return
        try:
            self.alt = self.alt_reader(session, sorted(self.universe))
        except (ValueError, OSError) as exc:
            self.alt_error = f"the alt_features rows before {session} cannot be used: {exc}"
            logger.error("%s", self.alt_error)
            return
        if self.alt is None:
            self.alt_error = f"the lake holds no alt_features day before {session}"
        else:
            logger.info("session %s: alternative features of %s", session, f"{self.alt.date:%Y-%m-%d}")

    def refresh(self, tickers: Iterable[str]) -> int:
        """Features, predictions and writes for `tickers` (their running bars changed) and for those whose last
        refresh did not reach Redis; how many were written."""
        self._dirty.update(tickers)
        if self.features is None or not self._dirty:
            return 0
        served, with_alt = self._served()
        self._dirty.update(self._switch_library(served))
        tickers = sorted(self._dirty)
        began = time.perf_counter()
        known = [t for t in tickers if t in self.universe]
        if len(known) < len(tickers):
            new = set(tickers) - self.universe - self._unknown
            if new:
                self._unknown |= new
                self.own["unknown_tickers"] = len(self._unknown)
                logger.warning(
                    "no daily history for %s: their bars are stored, not scored", ", ".join(sorted(new)[:10])
                )
        if not known:
            self._dirty.clear()
            return 0
        open_, high, low, close, volume, end_ms = self.running.arrays(known)
        values = self.features.update(known, open_, high, low, close, volume)
        columns = list(self.features.columns)
        ready = ~np.isnan(values[:, [columns.index(c) for c in REQUIRED_FEATURES]]).any(axis=1)
        self.own["warming_up"] += int((~ready).sum())
        if not ready.any():
            self._dirty.clear()
            return 0
        at = np.flatnonzero(ready)
        tickers_ready = [known[i] for i in at]
        as_of = [_iso(ms) for ms in end_ms[at]]
        session = str(self.running.session)
        pipe = self.client.pipeline(transaction=True)
        values, version, width = values[at], FEATURE_SET_VERSION, len(columns) - len(LIBRARY_COLUMNS)
        values, library, columns = values[:, :width], values[:, width:], columns[:width]
        if with_alt:  # the champion takes the alternative columns too: the session's rows appended
            values = np.hstack([values, self.alt.matrix(tickers_ready)])
            columns, version = [*columns, *ALT_COLUMNS], COMBINED_VERSION
        layout = [*columns, *LIBRARY_COLUMNS]  # the version's layout (the daily vectors' too): the library last
        if self.features.library:
            values, columns = np.hstack([values, library]), layout
        # else the vectors leave the library out: shorter than the layout, they hold its first columns
        answers = self._score(served, tickers_ready, session, as_of, values, columns, version) if served else None
        keyed = None
        if answers is not None:  # under the keys the service looks up: cache_key(prefix, ticker, date@as_of, explain)
            prefix = cache_prefix(served.name, served.version, served.horizon)
            keyed = (prefix, answer_suffix(self.explain), answers)
        self.writer.queue(pipe, layout, tickers_ready, session, as_of, values, version, keyed, self.cache_ttl_s)
        if answers is not None:
            add_event(pipe, prediction_fields(max(as_of), served.version, answers, tickers_ready))
            if self.alerts is not None:
                fired = self.alerts.evaluate(answers)
                self.alerts.write(pipe, fired)
                self.own["alerts"] += len(fired)
        try:
            pipe.execute()
        except redis.RedisError:  # the worker retries the batch (its bars are then duplicates): refresh them then
            if self.alerts is not None:
                self.alerts.failed()
            raise
        self._dirty.clear()
        self.own["refreshed"] += len(tickers_ready)
        self.own["predicted"] += len(answers or ())
        self.last_refresh_s = time.perf_counter() - began
        return len(tickers_ready)

    def _switch_library(self, served: ServedModel | None) -> list[str]:
        """The features compute the Alpha158-like library while the settings name it or the champion takes it (it
        costs ~6x the rest of a row), else leave it NaN; when it was just switched on, the tickers with a running
        bar, whose vectors are then rewritten with it."""
        wanted = self.library or (served is not None and served.takes_library)
        if wanted == self.features.library:
            return []
        self.features.set_library(wanted)
        if wanted:
            logger.info("computing the Alpha158-like library (%s)", "configured" if self.library else "the champion's")
            return sorted(self.running.bars) if self.running is not None else []
        return []

    def _served(self) -> tuple[ServedModel | None, bool]:
        """The champion and whether its vectors take the alternative columns; (None, False) when it was trained on
        a feature set the stream cannot compute (another version, or the alternative set without its rows)."""
        served = self.champion.current() if self.champion is not None else None
        if served is None:
            return None, False
        needed = served.feature_set_version
        if covers(FEATURE_SET_VERSION, needed):
            return served, False
        if needed == COMBINED_VERSION and self.alt is not None:
            return served, True
        if needed == COMBINED_VERSION:
            reason = f"it takes the alternative features and {self.alt_error}"
        else:
            reason = f"it was trained on feature set {needed}, the stream computes {COMBINED_VERSION}"
        if self._refused != (served.version, reason):
            self._refused = (served.version, reason)
            logger.error("not scoring with the champion v%s: %s", served.version, reason)
        return None, False

    def _score(self, served: ServedModel, tickers, session, as_of, values, columns, version) -> list[bytes]:
        layout = tuple(columns)
        close_at = columns.index("close")
        rows = [
            FeatureRow(t, session, float(values[i, close_at]), version, values[i], layout, "stream", as_of[i])
            for i, t in enumerate(tickers)
        ]
        answers: list[bytes] = []
        for start in range(0, len(rows), SCORE_CHUNK):
            answers += score(served, rows[start : start + SCORE_CHUNK], explain=self.explain)
        return answers


def _iso(ms: float) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
