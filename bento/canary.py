"""Canary releases: a share of the clients is answered by the registry's challenger, watched against the champion,
rolled back to 0% on its own when it errs or slows down. BentoML's open-source server splits no traffic (BentoCloud
does), so the split is here.

- Routing is sticky per client: the SHA-256 of its key id (or token subject) picks a bucket in 0..9999; buckets
  under `percent` x 100 get the challenger. Raising the share keeps every client already on the canary there.
- Every canary answer that fails (a model error, features the challenger cannot take) is answered again by the
  champion in the same request: the client sees a champion answer, the failure counts against the canary.
- `Monitor` keeps each variant's last `window_seconds` of requests (latency, failed or not) in this worker. Once both
  have `min_requests`, the canary is rolled back when its failure rate exceeds the champion's by
  `max_error_rate_margin`, or its p99 latency exceeds `max_latency_ratio` x the champion's (p99s under
  `latency_floor_ms` are never compared).
- The share and a rollback are shared by the workers through Redis (`stockpred:canary`, read every second), and
  survive restarts: a rolled-back challenger version stays at 0% until an admin sets a share again
  (`POST /admin/canary`); a new challenger version gets the requested share. Without Redis each worker holds its
  own.
- A canary request gets `STOCKPRED_CANARY_TIMEOUT_SECONDS`; past it the champion answers and the request counts as
  a canary failure, so a hanging challenger is rolled back like a failing one.
- While a canary runs, the distinct answers of both variants go to a Redis stream (`stockpred_core.io.served_log`);
  the `canary_live_ic` asset measures each variant's rank IC there once the realized returns arrive.
- A rollback writes an audit line (`"event": "canary_rollback"`), counts `stockpred_canary_rollbacks`, and tags the
  challenger's version in the MLflow registry (`canary.rolled_back_at`, `canary.rollback_reason`), where the
  training pipeline and the Dagster UI's model card read it.

Promotion to 100% is not a canary share: it is the registry's champion alias, moved by the pipeline behind its
blocking check (`STOCKPRED_CANARY_PERCENT` is capped at 50).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import orjson

from bento.audit import AuditSink
from bento.models import ModelManager, ServedModel
from bento.store import RedisUnavailable
from stockpred_core.io.served_log import STATE_KEY, add_served, decode_state
from stockpred_core.redaction import redact

logger = logging.getLogger("bentoml.stockpred")

CHAMPION, CANARY = "champion", "canary"
BUCKETS = 10_000
MAX_PERCENT = 50.0
SYNC_S = 1.0
JUDGE_EVERY_S = 0.25  # the verdict (a p99 over the window) at most this often per worker
SEEN_MAX = 500_000  # distinct answers remembered as written to the served log; past this the memory starts over


def bucket(client_id: str) -> int:
    return int.from_bytes(hashlib.sha256(client_id.encode()).digest()[:4], "big") % BUCKETS


@dataclass(frozen=True)
class Rules:
    window_seconds: float = 60.0
    min_requests: int = 50
    max_error_rate_margin: float = 0.02
    max_latency_ratio: float = 2.0
    latency_floor_ms: float = 20.0

    @classmethod
    def from_settings(cls, service) -> Rules:
        return cls(
            service.canary_window_seconds,
            service.canary_min_requests,
            service.canary_max_error_rate_margin,
            service.canary_max_latency_ratio,
            service.canary_latency_floor_ms,
        )


class Monitor:
    """Each variant's recent requests: (time, latency in seconds, failed)."""

    def __init__(self, rules: Rules, clock=time.monotonic) -> None:
        self.rules, self.clock = rules, clock
        self.samples: dict[str, deque] = {CHAMPION: deque(), CANARY: deque()}

    def record(self, variant: str, latency_s: float, failed: bool) -> None:
        self.samples[variant].append((self.clock(), latency_s, failed))
        self._window(variant)  # bounded however long it runs

    def clear(self) -> None:
        for samples in self.samples.values():
            samples.clear()

    def _window(self, variant: str) -> deque:
        """The variant's samples, those older than the window dropped."""
        samples, horizon = self.samples[variant], self.clock() - self.rules.window_seconds
        while samples and samples[0][0] < horizon:
            samples.popleft()
        return samples

    def stats(self, variant: str) -> dict:
        samples = self._window(variant)
        if not samples:
            return {"requests": 0, "error_rate": None, "p99_ms": None}
        latencies = np.fromiter((s[1] for s in samples), float, len(samples))
        failed = sum(s[2] for s in samples)
        return {
            "requests": len(samples),
            "error_rate": round(failed / len(samples), 4),
            "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 2),
        }

    def verdict(self) -> str | None:
        """Why the canary must go, or None (also while either variant has too few requests)."""
        rules = self.rules
        ours, theirs = self.stats(CANARY), self.stats(CHAMPION)
        if min(ours["requests"], theirs["requests"]) < rules.min_requests:
            return None
        if ours["error_rate"] > theirs["error_rate"] + rules.max_error_rate_margin:
            return (
                f"error rate {ours['error_rate']:.2%} against the champion's {theirs['error_rate']:.2%} "
                f"(margin {rules.max_error_rate_margin:.2%}) over {ours['requests']} requests"
            )
        floor = rules.latency_floor_ms
        if ours["p99_ms"] > floor and ours["p99_ms"] > rules.max_latency_ratio * max(theirs["p99_ms"], floor):
            return (
                f"p99 latency {ours['p99_ms']:.1f} ms against the champion's {theirs['p99_ms']:.1f} ms "
                f"(at most {rules.max_latency_ratio:g}x) over {ours['requests']} requests"
            )
        return None


class Canary:
    def __init__(self, service_settings, models: ModelManager, redis, audit: AuditSink, spawn, metrics=None, tag=None):
        self.configured = float(service_settings.canary_percent)
        self.timeout_s = float(service_settings.canary_timeout_seconds)
        self.models, self.redis, self.audit, self.metrics = models, redis, audit, metrics
        self.monitor = Monitor(Rules.from_settings(service_settings))
        self.spawn = spawn  # the predictor's: its background tasks, cancelled when the service stops
        self.tag = tag  # (version, tags) -> None: the registry tagging, run in a thread
        self.state: dict[str, str] = {}  # Redis's (or, without Redis, this worker's) percent / rolled_back / reason
        self._judged_at = 0.0
        self._watched: str | None = None  # the challenger version the monitor's samples are of
        self._served: dict[tuple, list[tuple[str, float]]] = {}  # to the served log (live rank IC), next sync
        self._seen: set[tuple] = set()
        if self.configured > 0:
            models.follow_challenger = True

    # -- the share -------------------------------------------------------------------------------------------------
    def inactive_reason(self) -> str | None:
        """Why the challenger may take no canary traffic, or None: it must be loaded beside a champion, not rolled
        back, and serve the champion's horizon and label (a client's request must mean the same to both)."""
        champion, challenger = self.models.current, self.models.challenger
        if challenger is None:
            return "no challenger in the registry (alias `challenger`)"
        if champion is None:
            return "no champion"
        if self.state.get("rolled_back") == challenger.version:
            return f"rolled back: {self.state.get('reason')}"
        if (challenger.horizon, challenger.label) != (champion.horizon, champion.label):
            return "the challenger forecasts another horizon or label than the champion"
        return None

    def challenger(self) -> ServedModel | None:
        """The challenger when it may take canary traffic (`inactive_reason` is None)."""
        return None if self.inactive_reason() is not None else self.models.challenger

    @property
    def requested(self) -> float:
        """The share asked for: an admin's (shared through Redis), else STOCKPRED_CANARY_PERCENT."""
        return float(self.state["percent"]) if "percent" in self.state else self.configured

    @property
    def percent(self) -> float:
        """The share in force: 0 without a challenger that may take traffic (none, or rolled back)."""
        return 0.0 if self.challenger() is None else self.requested

    def route(self, client_id: str | None) -> ServedModel | None:
        """The challenger when this client is in the canary's share, else None (the champion answers)."""
        challenger = self.challenger()
        if challenger is None or client_id is None or bucket(client_id) >= self.requested * BUCKETS / 100:
            return None
        return challenger

    def variant(self, client_id: str | None) -> str:
        return CHAMPION if self.route(client_id) is None else CANARY

    # -- watching --------------------------------------------------------------------------------------------------
    def record(self, variant: str, latency_s: float, failed: bool) -> None:
        challenger = self.models.challenger
        watched = challenger.version if challenger is not None else None
        if watched != self._watched:  # a new challenger is judged on its own requests only
            self.monitor.clear()
            self._watched = watched
        self.monitor.record(variant, latency_s, failed)
        if self.metrics is not None:
            self.metrics.variant_requests.labels(variant, "failed" if failed else "ok").inc()
            self.metrics.variant_latency.labels(variant).observe(latency_s)
        now = time.monotonic()
        if variant == CANARY and now - self._judged_at >= JUDGE_EVERY_S:
            self._judged_at = now
            reason = self.monitor.verdict()
            if reason is not None:
                self.spawn(self.roll_back(reason))

    def served(self, out) -> None:
        """Note the answers of an outcome for the served log (stockpred_core.io.served_log), while a canary runs:
        each distinct (variant, version, feature date, ticker) once."""
        if self.redis is None or self.percent <= 0:
            return
        version = out.served.version
        for ticker, answer in out.answers.items():
            doc = orjson.loads(answer)
            seen = (out.variant, version, doc["feature_date"], ticker)
            if seen in self._seen:
                continue
            if len(self._seen) >= SEEN_MAX:
                self._seen.clear()
            self._seen.add(seen)
            group = (out.variant, version, doc["feature_date"], int(doc["horizon_sessions"]))
            self._served.setdefault(group, []).append((ticker, float(doc["prediction"])))

    async def flush_served(self) -> None:
        if not self._served or self.redis is None or not self.redis.up:
            return
        groups, self._served = self._served, {}

        async def write() -> None:
            pipe = self.redis.client.pipeline(transaction=False)
            add_served(pipe, groups)
            await pipe.execute()

        try:
            await self.redis.call(write)
        except RedisUnavailable:
            for group, rows in groups.items():  # kept for the next try
                self._served.setdefault(group, []).extend(rows)

    async def roll_back(self, reason: str) -> None:
        """Take the challenger's version out of traffic (the requested share stays for the next version). Several
        workers may judge at once: the one that claims the version in Redis records the event, once."""
        challenger = self.challenger()
        if challenger is None:
            return  # rolled back already (by this worker or another)
        champion = self.models.current
        now = time.time()
        state = {"rolled_back": challenger.version, "reason": reason, "at": str(now)}
        self.state = {**self.state, **state}
        stats = {CANARY: self.monitor.stats(CANARY), CHAMPION: self.monitor.stats(CHAMPION)}
        self.monitor.clear()
        if not await self._claim(challenger.version, now):
            return  # another worker rolled it back first: read_state adopts its reason
        await self._save(state)
        self.audit.write(
            {
                "event": "canary_rollback",
                "ts": now,
                "challenger_version": challenger.version,
                "champion_version": champion.version if champion else None,
                "reason": reason,
                "variants": stats,
            }
        )
        logger.warning("canary of %s v%s rolled back to 0%%: %s", challenger.name, challenger.version, reason)
        if self.metrics is not None:
            self.metrics.canary_rollbacks.inc()
            self.metrics.canary_share.set(0)
        if self.tag is not None:
            tags = {"canary.rolled_back_at": str(int(now)), "canary.rollback_reason": reason[:500]}
            try:
                await asyncio.to_thread(self.tag, challenger.version, tags)
            except Exception as exc:  # the registry away: the audit line and the metric hold the event
                logger.warning("cannot tag the rolled-back version: %s", redact(f"{type(exc).__name__}: {exc}"))

    # -- the admin call and the shared state -------------------------------------------------------------------------
    async def set_percent(self, percent: float | None) -> dict:
        """The admin call: a new share (clearing a rollback), or None to read the state only."""
        if percent is not None:
            if not 0 <= percent <= MAX_PERCENT:
                raise ValueError(f"a canary share is 0 to {MAX_PERCENT:g} percent; 100% is a promotion")
            state = {"percent": f"{percent:g}", "rolled_back": "", "reason": "", "at": str(time.time())}
            self.state = {k: v for k, v in {**self.state, **state}.items() if v != "" and not k.startswith("claimed:")}
            self.monitor.clear()
            await self._save(state)
            await self._unclaim()
            await self._follow_challenger()
        return self.status()

    def status(self) -> dict:
        challenger, champion = self.models.challenger, self.models.current
        return {
            "percent": self.percent,
            "configured_percent": self.configured,
            "champion_version": champion.version if champion else None,
            "challenger_version": challenger.version if challenger else None,
            "inactive_reason": self.inactive_reason(),
            "variants": {CHAMPION: self.monitor.stats(CHAMPION), CANARY: self.monitor.stats(CANARY)},
        }

    async def _claim(self, version: str, now: float) -> bool:
        """Whether this worker is the first to roll `version` back (HSETNX; without Redis, always)."""
        if self.redis is None:
            return True
        try:
            return bool(await self.redis.call(lambda: self.redis.client.hsetnx(STATE_KEY, f"claimed:{version}", now)))
        except RedisUnavailable:
            return True

    async def _unclaim(self) -> None:
        """An admin's new share: every version may be rolled back (and recorded) again."""
        if self.redis is None:
            return
        try:
            claims = [
                k
                for k in await self.redis.call(lambda: self.redis.client.hkeys(STATE_KEY))
                if k.startswith(b"claimed:")
            ]
            if claims:
                await self.redis.call(lambda: self.redis.client.hdel(STATE_KEY, *claims))
        except RedisUnavailable:
            pass

    async def _save(self, state: dict) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.call(lambda: self.redis.client.hset(STATE_KEY, mapping=state))
        except RedisUnavailable:
            logger.warning("Redis is away: the canary state holds in this worker only until it is back")

    async def sync(self) -> None:
        """Background task: the shared state every second (a rollback by another worker, an admin's share)."""
        while True:
            await self.read_state()
            await self.flush_served()
            await asyncio.sleep(SYNC_S)

    async def read_state(self) -> None:
        if self.redis is not None and self.redis.up:
            try:
                raw = await self.redis.call(lambda: self.redis.client.hgetall(STATE_KEY))
            except RedisUnavailable:
                raw = None
            if raw is not None:
                before = self.state.get("rolled_back")
                self.state = decode_state(raw)
                if self.state.get("rolled_back") not in (None, before):
                    self.monitor.clear()  # another worker rolled it back: its samples here are of the old run
        await self._follow_challenger()
        if self.metrics is not None:
            self.metrics.canary_share.set(self.percent)

    async def _follow_challenger(self) -> None:
        """Once a share is asked for, load the registry's challenger (off the event loop) and keep following it."""
        if self.requested > 0 and not self.models.follow_challenger:
            self.models.follow_challenger = True
            await asyncio.get_running_loop().run_in_executor(None, self.models.check)
