"""Predictions for tickers: features (Redis, else the lake), the cache, the model; no HTTP and no Dagster here.

An answer is JSON bytes. What does not change for a (model version, ticker, feature date, horizon) is computed once
and cached as is; what does (cached, stale, where the features came from) is prepended per response
(`bento.heads`), so a cache hit never parses nor re-serializes JSON.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine

from cachetools import TTLCache

from bento.audit import AuditSink
from bento.canary import CANARY, CHAMPION, Canary
from bento.features import LakeFeatures
from bento.heads import AnswerHeads
from bento.models import MissingFeatures, ModelManager, NoModel, ServedModel
from bento.prediction_request import Outcome, RequestError, check_request
from bento.rate_limit import Limit, LocalLimiter, RateLimited
from bento.readiness import known_count, latest_date, readiness, remedy
from bento.refresh import Refresher, settle_heap
from bento.scoring import ModelRunner
from bento.shadow import ShadowScorer
from bento.store import Lookup, RedisLink, RedisUnavailable
from bento.write_behind import WriteBehind
from stockpred_core.features.alternative_catalog import covers
from stockpred_core.serving.keys import cache_key, cache_prefix, lock_name
from stockpred_core.serving.rows import FeatureRow
from stockpred_core.settings import Settings

LOCK_MS = 2000  # how long one caller may hold the right to compute a missing answer
LOCK_WAIT_S = 0.25  # how long the others wait for it before computing it themselves
LOCAL_CACHE_ENTRIES = 100_000

__all__ = ["NoModel", "Predictor", "RateLimited", "RequestError"]


def local_cache(ttl_seconds: float, max_entries: int = LOCAL_CACHE_ENTRIES, timer=time.monotonic) -> TTLCache:
    """The in-process cache used when no Redis is configured: least recently used out first, with a time to live."""
    return TTLCache(maxsize=max_entries, ttl=ttl_seconds, timer=timer)


class Predictor:
    """Everything behind /predict and /predict_batch, plus what /readyz reports."""

    def __init__(self, settings: Settings, metrics=None, audit: AuditSink | None = None) -> None:
        self.settings = settings
        self.config = config = settings.service
        self.metrics = metrics
        self.audit = audit or AuditSink(config.audit_log)
        self.models = ModelManager(settings, on_swap=self._on_swap)
        self.lake = LakeFeatures(settings.lake_url)
        self.redis = RedisLink(settings.redis_url, config.redis_timeout_seconds) if settings.redis_url else None
        self.local_cache = None if self.redis else local_cache(config.cache_ttl_seconds)
        self.local_limiter = LocalLimiter()  # the rate limit while Redis is away (per worker)
        self.runner = ModelRunner(on_batch=metrics.model_rows.observe if metrics else None)
        self.heads = AnswerHeads(config.max_feature_age_sessions, lambda: latest_date(self.redis, self.lake))
        self.refresher = Refresher(self.models, self.lake, self.redis, config.model_poll_seconds)
        self.shadow = ShadowScorer(self.models, self.lake, self.redis, settings.redis_url, self.audit, metrics)
        self.writes = WriteBehind(self.redis, config.cache_ttl_seconds, self._spawn) if self.redis else None
        self.canary = Canary(config, self.models, self.redis, self.audit, self._spawn, metrics, self.models.tag_version)
        self._background: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Synchronous first load (in the worker, before it serves): the model and the lake's features."""
        self.models.check()
        self.lake.refresh()
        self.heads.clock.age(self.lake.latest_date or "2020-01-02")  # loads the exchange calendar now

    async def start(self) -> None:
        await self.runner.start()
        if self.redis:
            self.redis.on_change = self._on_redis_change
            self.redis.on_snapshot = settle_heap  # the snapshot's rows are long-lived too
            self._on_redis_change(True)
            self._spawn(self.redis.watch())
        await self.refresher.start()
        if self.models.shadow_enabled:
            self._spawn(self.shadow.start())
        await self.canary.read_state()  # a rollback recorded before this worker started holds from its first request
        self._spawn(self.canary.sync())
        self._spawn(self.refresher.poll())
        settle_heap()

    def _spawn(self, coro: Coroutine) -> None:
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

    async def reload(self) -> dict:
        return await self.refresher.reload()

    async def flush_cache(self) -> dict:
        deleted, where = 0, "in-process"
        if self.local_cache is not None:
            deleted = len(self.local_cache)
            self.local_cache.clear()
        elif self.redis:
            where = "redis"
            try:
                deleted = await self.redis.flush_cache()
            except RedisUnavailable as exc:
                raise RequestError(503, f"Redis is unavailable, the cache cannot be flushed: {exc}") from exc
        return {"deleted": deleted, "cache": where}

    def readiness(self) -> tuple[bool, dict]:
        return readiness(self.models, self.lake, self.redis, self.local_cache is not None)

    def _on_swap(self, role: str, old: ServedModel | None, new: ServedModel | None) -> None:
        if self.metrics:
            self.metrics.served(role, old, new)
            if role == "champion" and old is not None:
                self.metrics.reloads.inc()

    def _on_redis_change(self, up: bool) -> None:
        if self.metrics:
            self.metrics.redis_up.set(1 if up else 0)

    # -- predictions -----------------------------------------------------------------------------------------------
    def check_request(
        self, tickers: list[str], horizon: int | None, explain: bool, served: ServedModel | None = None
    ) -> ServedModel:
        return check_request(self.models, self.settings, tickers, horizon, explain, served)

    async def predict(
        self,
        tickers: list[str],
        horizon: int | None,
        explain: bool,
        rate: Limit | None = None,
        challenger: ServedModel | None = None,
    ) -> Outcome:
        """Answers for `tickers`, by the champion (or by `challenger`: the canary's). With `rate` (key id,
        requests/s, burst) the caller's rate limit is charged in the same Redis round trip as the lookup (or by this
        worker while Redis is away): RateLimited when over it."""
        tickers = list(dict.fromkeys(t.strip().upper() for t in tickers))
        served = self.check_request(tickers, horizon, explain, challenger)
        out = Outcome(served, tickers, variant=CANARY if challenger is not None else CHAMPION)
        prefix = cache_prefix(served.name, served.version, served.horizon)
        single = len(tickers) == 1
        lookups = await self._lookups(tickers, prefix, explain, single, rate)
        cache = "redis" if lookups is not None else ("local" if self.local_cache is not None else "off")

        misses: list[FeatureRow] = []
        locks: list[str] = []
        waiting: list[FeatureRow] = []
        from_lake: list[FeatureRow] = []
        for ticker in tickers:
            found = lookups.get(ticker) if lookups is not None else None
            if found is not None and found.cached is not None:
                self._answer(out, ticker, found.cached, True, "cache", found.date)
                continue
            row = found.row if found is not None else None
            if row is None:
                row = self.lake.get(ticker)
                if row is None:
                    out.errors[ticker] = (404, self._unknown(ticker))
                else:
                    from_lake.append(row)
            elif found.locked:
                locks.append(lock_name(prefix, ticker, row.identity))
                misses.append(row)
            elif single:
                waiting.append(row)  # another caller is computing this answer: wait for it a little
            else:
                misses.append(row)

        if from_lake:
            misses.extend(await self._lake_rows(from_lake, prefix, explain, cache, out))
        if waiting:
            misses.extend(await self._wait_for_others(waiting, prefix, explain, out))
        if misses:
            await self._compute(served, misses, prefix, explain, cache, out, locks)
        if self.metrics:
            self.metrics.count(out)
        if challenger is None:
            self.shadow.submit(out.answers)
        return out

    async def _lookups(self, tickers, prefix: str, explain: bool, single: bool, rate) -> dict[str, Lookup | None]:
        """Redis's view of the tickers, None while Redis is away (the rate limit is then charged here)."""
        lookups = None
        if self.redis and self.redis.up:
            try:
                if single or not self.redis.rows or self.redis.intraday:
                    lookups = await self.redis.lookup(tickers, prefix, explain, LOCK_MS if single else 0, rate)
                else:
                    lookups = await self._lookup_many(tickers, prefix, explain, rate)
            except RedisUnavailable:
                lookups = None
        if rate is not None and lookups is None:
            wait = self.local_limiter.wait_seconds(*rate)
            if wait > 0:
                raise RateLimited(wait)
        return lookups

    async def _lookup_many(self, tickers, prefix: str, explain: bool, rate) -> dict[str, Lookup | None]:
        """Batches: cache keys from the online store's snapshot (dates), one MGET for the answers (the scripted
        per-ticker lookup costs Redis ~10 us a ticker), and the misses' features from the same snapshot. Not while
        the stream refreshes the store intraday: the snapshot is the close's, the hashes are newer."""
        rows = self.redis.rows
        known = [rows[t] for t in tickers if t in rows]
        values = await self.redis.answers(prefix, [(r.ticker, r.identity) for r in known], explain, rate)
        out: dict[str, Lookup | None] = dict.fromkeys(tickers)
        for row, value in zip(known, values, strict=True):
            out[row.ticker] = Lookup(row.date, value, None if value is not None else row, False)
        return out

    async def _lake_rows(self, rows, prefix, explain, cache, out: Outcome) -> list[FeatureRow]:
        """Answer lake rows from the cache where it has them; the others are returned."""
        if self.metrics:
            self.metrics.feature_reads.labels("lake").inc(len(rows))
        found: list[bytes | None] = [None] * len(rows)
        if cache == "redis":
            try:
                found = await self.redis.answers(prefix, [(r.ticker, r.identity) for r in rows], explain)
            except RedisUnavailable:
                pass
        elif cache == "local":
            found = [self.local_cache.get(cache_key(prefix, r.ticker, r.identity, True)) for r in rows]
            if not explain:
                plain = [cache_key(prefix, r.ticker, r.identity, False) for r in rows]
                found = [f if f is not None else self.local_cache.get(p) for f, p in zip(found, plain, strict=True)]
        return self._take_cached(rows, found, out)

    async def _wait_for_others(self, rows, prefix, explain, out: Outcome) -> list[FeatureRow]:
        deadline = time.monotonic() + LOCK_WAIT_S
        pending = list(rows)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            try:
                found = await self.redis.answers(prefix, [(r.ticker, r.identity) for r in pending], explain)
            except RedisUnavailable:
                break
            pending = self._take_cached(pending, found, out)
        return pending

    def _take_cached(self, rows: list[FeatureRow], found: list[bytes | None], out: Outcome) -> list[FeatureRow]:
        """Answer the rows whose cached answer was found; the others are returned, in order."""
        left = []
        for row, cached in zip(rows, found, strict=True):
            if cached is not None:
                self._answer(out, row.ticker, cached, True, "cache", row.date)
            else:
                left.append(row)
        return left

    async def _compute(self, served, rows, prefix, explain, cache, out: Outcome, locks: list[str]) -> None:
        usable = []
        for row in rows:
            trained_on, online = served.feature_set_version, row.feature_set_version
            if trained_on and online and not covers(online, trained_on):
                out.errors[row.ticker] = (
                    503,
                    f"the online features of {row.ticker} are feature set {online}, the champion "
                    f"v{served.version} was trained on {trained_on}: {remedy(trained_on)}",
                )
                continue
            try:  # a row without columns the model takes (an intraday vector without the library) fails alone
                served.index_for(row.columns)
            except MissingFeatures as exc:
                out.errors[row.ticker] = (503, f"{row.ticker}: {exc}")
                continue
            usable.append(row)
        if not usable:
            if locks and cache == "redis":
                self.writes.put([], locks)
            return
        if self.metrics and (redis_rows := sum(r.source == "redis" for r in usable)):
            self.metrics.feature_reads.labels("redis").inc(redis_rows)
        try:
            docs = await self.runner.run(served, usable, explain)
        except MissingFeatures as exc:
            for row in usable:
                out.errors[row.ticker] = (503, str(exc))
            docs = []
        items = []
        for row, doc in zip(usable, docs, strict=False):
            self._answer(out, row.ticker, doc, False, row.source, row.date)
            items.append((cache_key(prefix, row.ticker, row.identity, explain), doc))
        if cache == "redis":
            out.misses += len(items)
            self.writes.put(items, locks)
        elif cache == "local":
            out.misses += len(items)
            for key, doc in items:
                self.local_cache[key] = doc
        else:
            out.uncached += len(items)

    def _answer(self, out: Outcome, ticker: str, doc: bytes, cached: bool, source: str, date: str) -> None:
        out.answers[ticker], stale = self.heads.finish(doc, cached, source, date, out.variant)
        out.stale += stale
        out.hits += cached

    def _unknown(self, ticker: str) -> str:
        known = known_count(self.redis, self.lake)
        return f"unknown ticker {ticker!r}: no online features for it ({known} tickers known)"
