"""Predictions for tickers: features (Redis, else the lake), the cache, the model; no HTTP and no Dagster here.

An answer is JSON bytes. What does not change for a (model version, ticker, feature date, horizon) is computed once
and cached as is; what does (cached, stale, where the features came from) is prepended per response, so a cache
hit never parses nor re-serializes JSON.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson

from bento.audit import AuditSink
from bento.features import FeatureRow, LakeFeatures, StalenessClock
from bento.models import MissingFeatures, ModelManager, NoModel, ServedModel
from bento.scoring import ModelRunner
from bento.security import LocalLimiter
from bento.shadow import ShadowScorer
from bento.store import Lookup, RateLimited, RedisLink, RedisUnavailable, cache_key, cache_prefix, lock_name
from stockpred_core.settings import Settings

logger = logging.getLogger("bentoml.stockpred")

LOCK_MS = 2000  # how long one caller may hold the right to compute a missing answer
LOCK_WAIT_S = 0.25  # how long the others wait for it before computing it themselves

__all__ = ["NoModel", "Predictor", "RateLimited", "RequestError"]


class RequestError(ValueError):
    """A request the service understood but cannot serve (HTTP status with it)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LocalTTLCache:
    """The in-process cache used when no Redis is configured: LRU with a time to live."""

    def __init__(self, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self.ttl, self.max_entries = ttl_seconds, max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[1]

    def set(self, key: str, value: bytes) -> None:
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> int:
        n = len(self._data)
        self._data.clear()
        return n


def settle_heap() -> None:
    """Collect, then freeze what survives (the models, the feature snapshot, the imported libraries) out of the
    cyclic collector's reach: with ~500k long-lived objects a full collection pauses a worker for ~0.4 s, which
    showed up as p99 latency. Called at start and after a model or feature reload."""
    gc.collect()
    gc.freeze()


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


class Predictor:
    """Everything behind /predict and /predict_batch, plus what /readyz reports."""

    def __init__(self, settings: Settings, metrics=None, audit: AuditSink | None = None) -> None:
        self.settings = settings
        self.config = settings.service
        self.metrics = metrics
        self.audit = audit or AuditSink(settings.service.audit_log)
        self.models = ModelManager(settings, on_swap=self._on_swap)
        self.lake = LakeFeatures(settings.lake_url)
        self.redis = RedisLink(settings.redis_url) if settings.redis_url else None
        self.local_cache = None if self.redis else LocalTTLCache(self.config.cache_ttl_seconds)
        self.local_limiter = LocalLimiter()  # the rate limit while Redis is away (per worker)
        self.runner = ModelRunner(on_batch=metrics.model_rows.observe if metrics else None)
        self.clock = StalenessClock()
        self._background: set[asyncio.Task] = set()
        self._reload_token: bytes | None = None
        self.shadow = ShadowScorer(self.models, self.lake, self.redis, settings.redis_url, self.audit, metrics)
        self._heads: dict[tuple[bool, str, str], tuple[bytes, bool]] = {}
        self._heads_at, self._heads_latest = 0.0, None
        self._pending_items: list[tuple[str, bytes]] = []
        self._pending_locks: list[str] = []
        self._flushing = False

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Synchronous first load (in the worker, before it serves): the model and the lake's features."""
        self.models.check()
        self.lake.refresh()
        self.clock.age(self.lake.latest_date or "2020-01-02")  # loads the exchange calendar now, not on a request

    async def start(self) -> None:
        await self.runner.start()
        loop = asyncio.get_running_loop()
        if self.redis:
            self.redis.on_change = self._on_redis_change
            self.redis.on_snapshot = settle_heap  # the snapshot's rows are long-lived too
            self._on_redis_change(True)
            self._spawn(self.redis.watch())
            try:
                await self.redis.refresh_meta()
                self._reload_token = await self.redis.reload_token()
            except RedisUnavailable:
                pass
        if self.models.shadow_enabled:
            self._spawn(self.shadow.start())
        self._spawn(self._poll_models(loop))
        settle_heap()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self.redis:
            await self.redis.close()
        self.runner.executor.shutdown(wait=False, cancel_futures=True)
        gc.unfreeze()  # let the interpreter free everything at exit

    async def _poll_models(self, loop) -> None:
        """Follow the registry alias (every model_poll_seconds) and the admin reload signal (every second)."""
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            due = time.monotonic() - last_check >= self.config.model_poll_seconds
            if self.redis and self.redis.up:
                try:
                    token = await self.redis.reload_token()
                    if token != self._reload_token:
                        self._reload_token, due = token, True
                except RedisUnavailable:
                    pass
            if due:
                last_check = time.monotonic()
                await self._refresh(loop)

    async def _refresh(self, loop) -> bool:
        """Follow the registry and the lake table; a new model or table leaves the heap settled again."""
        changed = await loop.run_in_executor(None, self.models.check)
        reread = await loop.run_in_executor(None, self.lake.refresh_changed)
        if changed or reread:
            settle_heap()
        return changed

    async def reload(self) -> dict:
        """The admin call: check the registry now, here, and tell the other workers to do the same."""
        before = self.models.current.version if self.models.current else None
        loop = asyncio.get_running_loop()
        changed = await self._refresh(loop)
        broadcast = False
        if self.redis:
            try:
                await self.redis.signal_reload()
                self._reload_token = await self.redis.reload_token()
                broadcast = True
            except RedisUnavailable:
                pass
        current = self.models.current
        return {
            "changed": changed,
            "previous_version": before,
            "model_version": current.version if current else None,
            "challenger_version": self.models.challenger.version if self.models.challenger else None,
            "other_workers_signalled": broadcast,
            "error": self.models.error,
        }

    async def flush_cache(self) -> dict:
        deleted, where = 0, "in-process"
        if self.local_cache is not None:
            deleted = self.local_cache.clear()
        elif self.redis:
            where = "redis"
            try:
                deleted = await self.redis.flush_cache()
            except RedisUnavailable as exc:
                raise RequestError(503, f"Redis is unavailable, the cache cannot be flushed: {exc}") from exc
        return {"deleted": deleted, "cache": where}

    def _on_swap(self, role: str, old: ServedModel | None, new: ServedModel | None) -> None:
        if self.metrics:
            self.metrics.served(role, old, new)
            if role == "champion" and old is not None:
                self.metrics.reloads.inc()

    def _on_redis_change(self, up: bool) -> None:
        if self.metrics:
            self.metrics.redis_up.set(1 if up else 0)

    # -- readiness -------------------------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict]:
        served = self.models.current
        redis_state = "not configured"
        redis_count = 0
        if self.redis:
            redis_state = "ok" if self.redis.up else "down (the cause is in the service log)"  # no hosts in answers
            redis_count = int(self.redis.meta.get("count", 0)) if self.redis.up else 0
        lake_count = len(self.lake.rows)
        source = "redis" if redis_count else ("lake" if lake_count else None)
        reasons = []
        if served is None:
            reasons.append(self.models.error or "no model loaded yet")
        if source is None:
            reasons.append(self.lake.error or "no online features in Redis nor in the lake")
        versions = self._served_feature_versions(source)
        trained_on = served.feature_set_version if served is not None else None
        if trained_on and versions and trained_on not in versions:
            reasons.append(
                f"champion v{served.version} was trained on feature set {served.feature_set_version}, online "
                f"features are {sorted(versions)}: materialize online_features after the features backfill"
            )
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "model": served.describe() if served else None,
            "model_error": self.models.error,
            "challenger": self.models.challenger.describe() if self.models.challenger else None,
            "features": {
                "source": source,
                "tickers": redis_count or lake_count,
                "latest_date": self._latest_date(),
                "lake_tickers": lake_count,
            },
            "redis": redis_state,
            "cache": "in-process" if self.local_cache is not None else ("redis" if self.redis.up else "off"),
            "degraded": bool(self.redis and not self.redis.up),
        }
        return not reasons, body

    def _served_feature_versions(self, source: str | None) -> set[str]:
        if source == "redis":
            version = self.redis.meta.get("feature_set_version")
            return {version} if version else set()
        return set(self.lake.feature_set_versions) if source == "lake" else set()

    def _latest_date(self) -> str | None:
        if self.redis and self.redis.up and self.redis.meta.get("latest_date"):
            return self.redis.meta["latest_date"]
        return self.lake.latest_date

    def _known_count(self) -> int:
        if self.redis and self.redis.up and self.redis.meta.get("count"):
            return int(self.redis.meta["count"])
        return len(self.lake.rows)

    # -- predictions -----------------------------------------------------------------------------------------------
    def check_request(self, tickers: list[str], horizon: int | None, explain: bool) -> ServedModel:
        served = self.models.current
        if served is None:
            raise NoModel(self.models.error or f"no champion model for {self.settings.registered_model} yet")
        if horizon is not None and horizon != served.horizon:
            raise RequestError(
                422,
                f"horizon {horizon} is not served: the champion ({served.name} v{served.version}) forecasts "
                f"{served.horizon} sessions ahead; send horizon {served.horizon} or leave it out",
            )
        if len(tickers) > self.config.max_batch_tickers:
            raise RequestError(413, f"{len(tickers)} tickers: at most {self.config.max_batch_tickers} per request")
        if explain and len(tickers) > self.config.max_explain_tickers:
            raise RequestError(
                422,
                f"explanations are limited to {self.config.max_explain_tickers} tickers per request "
                f"(got {len(tickers)}): send explain=false or split the request",
            )
        return served

    async def predict(
        self, tickers: list[str], horizon: int | None, explain: bool, rate: tuple[str, float, int] | None = None
    ) -> Outcome:
        """Answers for `tickers`. With `rate` (key id, requests/s, burst) the caller's rate limit is charged in the
        same Redis round trip as the lookup (or by this worker while Redis is away): RateLimited when over it."""
        tickers = list(dict.fromkeys(t.strip().upper() for t in tickers))
        served = self.check_request(tickers, horizon, explain)
        out = Outcome(served, tickers)
        prefix = cache_prefix(served.name, served.version, served.horizon)
        single = len(tickers) == 1
        lookups = None
        if self.redis and self.redis.up:
            try:
                if single or not self.redis.rows:
                    lookups = await self.redis.lookup(tickers, prefix, explain, LOCK_MS if single else 0, rate)
                else:
                    lookups = await self._lookup_many(tickers, prefix, explain, rate)
            except RedisUnavailable:
                lookups = None
        if rate is not None and lookups is None:
            wait = self.local_limiter.check(*rate)
            if wait > 0:
                raise RateLimited(wait)
        cache = "redis" if lookups is not None else ("local" if self.local_cache is not None else "off")

        misses: list[FeatureRow] = []
        locks: list[str] = []
        waiting: list[FeatureRow] = []
        from_lake: list[FeatureRow] = []
        for ticker in tickers:
            found = lookups.get(ticker) if lookups is not None else None
            if found is not None and found.cached is not None:
                out.answers[ticker] = self._finish(found.cached, True, "cache", found.date, out)
                out.hits += 1
                continue
            row = found.row if found is not None else None
            if row is None:
                row = self.lake.get(ticker)
                if row is None:
                    out.errors[ticker] = (404, self._unknown(ticker))
                    continue
                from_lake.append(row)
                continue
            if found.locked:
                locks.append(lock_name(prefix, ticker, row.date))
                misses.append(row)
            elif single:
                waiting.append(row)  # another caller is computing this answer: wait for it a little
            else:
                misses.append(row)

        if from_lake:
            await self._lake_rows(from_lake, prefix, explain, cache, out, misses)
        if waiting:
            misses.extend(await self._wait_for_others(waiting, prefix, explain, out))
        if misses:
            await self._compute(served, misses, prefix, explain, cache, out, locks)
        if self.metrics:
            m = self.metrics
            if out.hits:
                m.cache.labels("hit").inc(out.hits)
            if out.misses:
                m.cache.labels("miss").inc(out.misses)
            if out.uncached:
                m.cache.labels("uncached").inc(out.uncached)
            if out.stale:
                m.stale.inc(out.stale)
        self.shadow.submit(out.answers)
        return out

    async def _lookup_many(self, tickers, prefix: str, explain: bool, rate) -> dict[str, Lookup | None]:
        """Batches: cache keys from the online store's snapshot (dates), one MGET for the answers (the scripted
        per-ticker lookup costs Redis ~10 us a ticker), and the misses' features from the same snapshot."""
        rows = self.redis.rows
        known = [rows[t] for t in tickers if t in rows]
        values = await self.redis.answers(prefix, [(r.ticker, r.date) for r in known], explain, rate)
        out: dict[str, Lookup | None] = dict.fromkeys(tickers)
        for row, value in zip(known, values, strict=True):
            out[row.ticker] = Lookup(row.date, value, None if value is not None else row, False)
        return out

    async def _lake_rows(self, rows, prefix, explain, cache, out: Outcome, misses: list[FeatureRow]) -> None:
        if self.metrics:
            self.metrics.feature_reads.labels("lake").inc(len(rows))
        found: list[bytes | None] = [None] * len(rows)
        if cache == "redis":
            try:
                found = await self.redis.answers(prefix, [(r.ticker, r.date) for r in rows], explain)
            except RedisUnavailable:
                pass
        elif cache == "local":
            found = [self.local_cache.get(cache_key(prefix, r.ticker, r.date, True)) for r in rows]
            if not explain:
                plain = [cache_key(prefix, r.ticker, r.date, False) for r in rows]
                found = [f if f is not None else self.local_cache.get(p) for f, p in zip(found, plain, strict=True)]
        misses.extend(self._take_cached(rows, found, out))

    async def _wait_for_others(self, rows, prefix, explain, out: Outcome) -> list[FeatureRow]:
        deadline = time.monotonic() + LOCK_WAIT_S
        pending = list(rows)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            try:
                found = await self.redis.answers(prefix, [(r.ticker, r.date) for r in pending], explain)
            except RedisUnavailable:
                break
            pending = self._take_cached(pending, found, out)
        return pending

    def _take_cached(self, rows: list[FeatureRow], found: list[bytes | None], out: Outcome) -> list[FeatureRow]:
        """Answer the rows whose cached answer was found; the others are returned, in order."""
        left = []
        for row, cached in zip(rows, found, strict=True):
            if cached is not None:
                out.answers[row.ticker] = self._finish(cached, True, "cache", row.date, out)
                out.hits += 1
            else:
                left.append(row)
        return left

    async def _compute(self, served, rows, prefix, explain, cache, out: Outcome, locks: list[str]) -> None:
        usable = []
        for row in rows:
            if (
                served.feature_set_version
                and row.feature_set_version
                and (row.feature_set_version != served.feature_set_version)
            ):
                out.errors[row.ticker] = (
                    503,
                    f"the online features of {row.ticker} are feature set {row.feature_set_version}, the champion "
                    f"v{served.version} was trained on {served.feature_set_version}: materialize online_features",
                )
            else:
                usable.append(row)
        if not usable:
            if locks and cache == "redis":
                self._write_behind([], locks)
            return
        if self.metrics:
            redis_rows = sum(r.source == "redis" for r in usable)
            if redis_rows:
                self.metrics.feature_reads.labels("redis").inc(redis_rows)
        try:
            docs = await self.runner.run(served, usable, explain)
        except MissingFeatures as exc:
            for row in usable:
                out.errors[row.ticker] = (503, str(exc))
            docs = []
        items = []
        for row, doc in zip(usable, docs, strict=False):
            out.answers[row.ticker] = self._finish(doc, False, row.source, row.date, out)
            items.append((cache_key(prefix, row.ticker, row.date, explain), doc))
        if cache == "redis":
            out.misses += len(items)
            self._write_behind(items, locks)
        elif cache == "local":
            out.misses += len(items)
            for key, doc in items:
                self.local_cache.set(key, doc)
        else:
            out.uncached += len(items)

    def _write_behind(self, items: list[tuple[str, bytes]], locks: list[str]) -> None:
        """Queue answers for the cache; one writer flushes what concurrent requests queued in a single call."""
        self._pending_items.extend(items)
        self._pending_locks.extend(locks)
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush_writes())

    async def _flush_writes(self) -> None:
        try:
            while self._pending_items or self._pending_locks:
                await asyncio.sleep(0.002)  # let the requests of this moment queue theirs too
                items, self._pending_items = self._pending_items, []
                locks, self._pending_locks = self._pending_locks, []
                try:
                    await self.redis.store(items, self.config.cache_ttl_seconds, locks)
                except RedisUnavailable:
                    pass
        finally:
            self._flushing = False

    def _unknown(self, ticker: str) -> str:
        return f"unknown ticker {ticker!r}: no online features for it ({self._known_count()} tickers known)"

    def _finish(self, doc: bytes, cached: bool, source: str, date: str, out: Outcome) -> bytes:
        """Prepend what changes per response (cached, source, staleness) to the cacheable answer."""
        head, stale = self._head(cached, source, date)
        out.stale += stale
        return head + doc[1:]

    def _head(self, cached: bool, source: str, date: str) -> tuple[bytes, bool]:
        latest = self._latest_date()
        now = time.monotonic()
        if now - self._heads_at > 60 or latest != self._heads_latest:  # ages move with the clock and new data
            self._heads, self._heads_at, self._heads_latest = {}, now, latest
        found = self._heads.get((cached, source, date))
        if found is not None:
            return found
        age = self.clock.age(date)
        reason = None
        if latest and date < latest:
            reason = f"features dated {date}, the latest online features are dated {latest}"
        elif age is not None and age > self.config.max_feature_age_sessions:
            reason = f"features are {age} sessions old (more than {self.config.max_feature_age_sessions})"
        head = orjson.dumps(
            {
                "cached": cached,
                "features_source": source,
                "stale": reason is not None,
                "stale_reason": reason,
                "feature_age_sessions": age,
            }
        )
        found = self._heads[(cached, source, date)] = (head[:-1] + b",", reason is not None)
        return found
