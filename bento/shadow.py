"""Shadow scoring: the registry's challenger scores the tickers the champion answered, off the request path.

Both predictions go to the audit log (`"event": "shadow"`) and the `stockpred_shadow_*` metrics; clients only ever
see the champion's answer. A bounded queue drops rows (counted) rather than slow serving down.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import redis as sync_redis

from bento.audit import AuditSink
from bento.features import LakeFeatures
from bento.models import MissingFeatures, ModelManager, ServedModel
from bento.scoring import MAX_MODEL_BATCH, score
from stockpred_core.io.online_store import KEY_PREFIX, decode_vector
from stockpred_core.redaction import redact
from stockpred_core.serving.rows import FeatureRow

logger = logging.getLogger("bentoml.stockpred")
QUEUE_SIZE = 10_000


class ShadowScorer:
    def __init__(self, models: ModelManager, lake: LakeFeatures, redis_link, redis_url, audit: AuditSink, metrics):
        self.models, self.lake, self.redis, self.redis_url = models, lake, redis_link, redis_url
        self.audit, self.metrics = audit, metrics
        self.queue: asyncio.Queue | None = None
        self._client: sync_redis.Redis | None = None  # used from the scoring thread

    def start(self) -> asyncio.Future:
        self.queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        return self._loop()

    def submit(self, answers: dict[str, bytes]) -> None:
        """Queue the champion's answers (JSON bytes) for the challenger, when there is one."""
        if self.queue is None or self.models.challenger is None:
            return
        for answer in answers.values():
            try:
                self.queue.put_nowait(answer)
            except asyncio.QueueFull:
                if self.metrics:
                    self.metrics.shadow.labels("dropped").inc()

    async def _loop(self, executor=None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            while len(items) < MAX_MODEL_BATCH and not self.queue.empty():
                items.append(self.queue.get_nowait())
            challenger = self.models.challenger
            if challenger is None:
                continue
            try:
                await loop.run_in_executor(executor, self._score, challenger, items)
            except Exception as exc:  # shadow scoring must never hurt serving
                logger.warning("shadow scoring failed: %s", redact(f"{type(exc).__name__}: {exc}"))
                if self.metrics:
                    self.metrics.shadow.labels("failed").inc(len(items))

    def _complete(self, challenger: ServedModel, row) -> bool:
        """Whether the row holds every column the challenger takes (an intraday vector without the Alpha158-like
        library does not hold a library challenger's): such rows are left out, counted as skipped."""
        try:
            challenger.index_for(row.columns)
        except MissingFeatures:
            if self.metrics:
                self.metrics.shadow.labels("skipped").inc()
            return False
        return True

    def _score(self, challenger: ServedModel, items: list[bytes]) -> None:
        answers = [orjson.loads(answer) for answer in items]
        rows = [self._row(answer["ticker"]) for answer in answers]
        keep = [
            i
            for i, row in enumerate(rows)
            if row is not None and row.date == answers[i]["feature_date"] and self._complete(challenger, row)
        ]
        if not keep:
            return
        docs = score(challenger, [rows[i] for i in keep], explain=False)
        for i, doc in zip(keep, docs, strict=True):
            theirs = orjson.loads(doc)["prediction"]
            ours = answers[i]["prediction"]
            self.audit.write(
                {
                    "event": "shadow",
                    "ts": time.time(),
                    "ticker": answers[i]["ticker"],
                    "feature_date": answers[i]["feature_date"],
                    "horizon_sessions": answers[i]["horizon_sessions"],
                    "champion_version": answers[i]["model_version"],
                    "champion_prediction": ours,
                    "challenger_version": challenger.version,
                    "challenger_prediction": theirs,
                    "abs_diff": abs(theirs - ours),
                }
            )
            if self.metrics:
                self.metrics.shadow.labels("scored").inc()
                self.metrics.shadow_diff.observe(abs(theirs - ours))

    def _row(self, ticker: str) -> FeatureRow | None:
        """The ticker's vector (this runs in a worker thread: Redis through its own synchronous client)."""
        if self.redis is not None and self.redis.up:
            row = self._redis_row(ticker)
            if row is not None:
                return row
        return self.lake.get(ticker)

    def _redis_row(self, ticker: str) -> FeatureRow | None:
        if self._client is None:
            self._client = sync_redis.Redis.from_url(self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            date, close, version, vector = self._client.hmget(
                KEY_PREFIX + ticker, "date", "close", "feature_set_version", "vector"
            )
        except (sync_redis.RedisError, OSError):
            return None
        columns = self.redis.columns(version.decode()) if version else None
        if date is None or vector is None or columns is None:
            return None
        values = decode_vector(vector)
        return FeatureRow(ticker, date.decode(), float(close), version.decode(), values, columns, "redis")
