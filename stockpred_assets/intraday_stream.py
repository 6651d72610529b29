"""The intraday stream as Dagster sees it: the external asset `intraday_bars`, the sensor that watches the stream's
status hash in Redis, and the check that turns red when the stream stalls during the session.

The stream runs outside Dagster (`stockpred-stream worker`, then `stockpred-stream persist --date D` after the close,
which writes `raw/intraday_bars`). Each worker keeps its status in `stockpred:stream:status` and the persist command
adds `persisted:<date>` (stockpred_core/io/stream_events.py). `intraday_stream_sensor` turns that hash into asset
events: an observation when the workers' bars or counters move, a materialization of the session's partition once
it is persisted, and an evaluation of `intraday_stream_fresh` when the verdict changes or the stream moves. A stall
also goes to the events stream as an alert (rule `stream_stale`), once per stall.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

import dagster as dg
import exchange_calendars as xcals
import pandas as pd
from redis import Redis
from redis import exceptions as redis_exceptions

from stockpred_assets.partitions import TIMEZONE, trading_days
from stockpred_core.data import calendar
from stockpred_core.io.stream_events import PERSISTED, add_alert, consumers, read_status
from stockpred_core.redaction import redact, redact_url, secrets_in
from stockpred_resources.redis import RedisResource

LAYER, TABLE = "raw", "intraday_bars"  # where `stockpred-stream persist` writes (stream/persist.py)
CHECK_NAME = "intraday_stream_fresh"
# A worker refreshes its status at most once a second and a minute bar ends every minute: five minutes without
# either, inside the session, is a stall (a dead worker, or a source that stopped sending), not a quiet minute.
STALE_AFTER_SECONDS = 300.0
COUNTERS = ("entries", "applied", "duplicates", "out_of_order", "dead_lettered")


Clock = Callable[[], dt.datetime]
REDIS_DOWN = (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, redis_exceptions.AuthenticationError)

intraday_bars = dg.AssetSpec(
    "intraday_bars",
    group_name="intraday",
    partitions_def=trading_days,
    kinds={"redis", "parquet"},
    description=(
        "Intraday bars of the stream, written outside Dagster: `stockpred-stream worker` applies them to Redis as "
        "they arrive, `stockpred-stream persist --date D` writes the session to `raw/intraday_bars` (partition D). "
        "intraday_stream_sensor reports both from the stream's status hash."
    ),
)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=1)
def _exchange() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(calendar.EXCHANGE, start=calendar.FIRST_SESSION)


def session_hours(day: pd.Timestamp | str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Open and close (UTC) of the exchange's regular session on `day` (13:00 close on half days), or None when the
    exchange is closed that day."""
    day = pd.Timestamp(day).normalize()
    if not calendar.is_session(day):
        return None
    return _exchange().session_open(day), _exchange().session_close(day)


def _iso(epoch_s: float | None) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="seconds") if epoch_s is not None else "-"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _partition_of(epoch_s: float) -> str | None:
    """The trading-day partition (New York date) of an instant, or None on a weekend (no such partition)."""
    day = pd.Timestamp(epoch_s, unit="s", tz="UTC").tz_convert(TIMEZONE)
    return f"{day:%Y-%m-%d}" if day.weekday() < 5 and f"{day:%Y-%m-%d}" >= calendar.FIRST_SESSION else None


@dataclass(frozen=True)
class StreamState:
    """The workers' status, summed: what an observation of `intraday_bars` reports."""

    workers: dict[str, dict]
    now: dt.datetime

    @property
    def last_bar_end_s(self) -> float | None:
        ends = [w["last_bar_end_ms"] for w in self.workers.values() if w.get("last_bar_end_ms") is not None]
        return max(ends) / 1000.0 if ends else None

    @property
    def updated_at_s(self) -> float | None:
        stamps = [w["updated_at"] for w in self.workers.values() if w.get("updated_at") is not None]
        return max(stamps) if stamps else None

    @property
    def age_seconds(self) -> float | None:
        """How long ago the stream last moved: the older of its newest status refresh and its newest bar end (a
        worker that refreshes its status while its source sends nothing still ages)."""
        marks = [self.updated_at_s, self.last_bar_end_s]
        if any(m is None for m in marks):
            return None
        return round(self.now.timestamp() - min(marks), 3)

    def progress(self) -> str:
        """What changes when bars flow (not the status refreshes of an idle worker): the sensor's change detector."""
        return _digest({n: [w.get("last_bar_end_ms"), *(w.get(c) for c in COUNTERS)] for n, w in self.workers.items()})

    def metadata(self) -> dict[str, dg.MetadataValue]:
        lags = [float(w["lag_seconds"]) for w in self.workers.values() if w.get("lag_seconds") is not None]
        staleness = {
            name: round(self.now.timestamp() - float(w["updated_at"]), 1)
            for name, w in sorted(self.workers.items())
            if w.get("updated_at") is not None
        }
        return {
            "last_bar_end": dg.MetadataValue.text(_iso(self.last_bar_end_s)),
            "status_updated_at": dg.MetadataValue.text(_iso(self.updated_at_s)),
            **({"lag_seconds": dg.MetadataValue.float(max(lags))} if lags else {}),  # the largest of the workers
            **{c: dg.MetadataValue.int(int(sum(int(w.get(c) or 0) for w in self.workers.values()))) for c in COUNTERS},
            "workers": dg.MetadataValue.int(len(self.workers)),
            "worker_staleness_seconds": dg.MetadataValue.json(staleness),
        }


@dataclass(frozen=True)
class Freshness:
    passed: bool
    in_session: bool
    age_seconds: float | None
    message: str

    def metadata(self, stale_after: float) -> dict[str, dg.MetadataValue]:
        return {
            "in_session": dg.MetadataValue.bool(self.in_session),
            **({"age_seconds": dg.MetadataValue.float(self.age_seconds)} if self.age_seconds is not None else {}),
            "threshold_seconds": dg.MetadataValue.float(stale_after),
            "verdict": dg.MetadataValue.text(self.message),
        }


def freshness(state: StreamState, stale_after: float = STALE_AFTER_SECONDS) -> Freshness:
    """Stale when, inside the regular session and at least `stale_after` seconds past the open, the stream has not
    moved for more than `stale_after` seconds, or no worker reports at all. Outside the session a quiet stream is
    expected and passes."""
    now = pd.Timestamp(state.now).tz_convert("UTC")
    hours = session_hours(now.tz_convert(TIMEZONE).tz_localize(None))
    if hours is None or not hours[0] <= now < hours[1]:
        return Freshness(True, False, state.age_seconds, "the exchange is closed: a quiet stream is expected")
    if now < hours[0] + pd.Timedelta(seconds=stale_after):
        return Freshness(True, True, state.age_seconds, "the session opened less than the threshold ago")
    age = state.age_seconds
    if age is None:
        return Freshness(False, True, None, "no intraday worker has reported its status during the session")
    if age > stale_after:
        return Freshness(
            False,
            True,
            age,
            f"the intraday stream has not moved for {age:.0f} s (threshold {stale_after:.0f} s): newest bar end "
            f"{_iso(state.last_bar_end_s)}, newest status {_iso(state.updated_at_s)}",
        )
    return Freshness(True, True, age, f"moved {age:.0f} s ago")


def _read_state(client: Redis, now: dt.datetime) -> tuple[StreamState, dict[str, dict]]:
    status = read_status(client)
    persisted = {k[len(PERSISTED) :]: v for k, v in status.items() if k.startswith(PERSISTED)}
    return StreamState(workers=dict(consumers(status)), now=now), persisted


def _where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port or 6379}" if parsed.hostname else redact_url(url)


def _evaluation(fresh: Freshness, stale_after: float) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=intraday_bars.key,
        check_name=CHECK_NAME,
        passed=fresh.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=fresh.message,
        metadata=fresh.metadata(stale_after),
    )


def _materialization(date: str, written: Mapping) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key=intraday_bars.key,
        partition=date,
        description="stockpred-stream persist wrote the session's bars",
        metadata={
            "dagster/row_count": dg.MetadataValue.int(int(written.get("bars", 0))),
            "bars": dg.MetadataValue.int(int(written.get("bars", 0))),
            "tickers": dg.MetadataValue.int(int(written.get("tickers", 0))),
            "path": dg.MetadataValue.path(redact(str(written.get("path", "-")))),
        },
    )


def build_intraday_stream_sensor(
    name: str = "intraday_stream_sensor", stale_after: float = STALE_AFTER_SECONDS, clock: Clock = _utc_now
) -> dg.SensorDefinition:
    """The sensor over the stream's status hash; `clock` (aware datetimes) and `stale_after` are here for tests."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports the intraday stream (outside Dagster) as events of intraday_bars from its Redis status "
        "hash; evaluates intraday_stream_fresh and XADDs a stream_stale alert once per stall",
    )
    def _sensor(context: dg.SensorEvaluationContext, redis: RedisResource):
        """Observation when bars moved, a materialization per newly persisted session, the freshness verdict."""
        if not redis.enabled:
            return dg.SkipReason(
                "Redis is not configured (set STOCKPRED_REDIS_URL): the intraday stream is not watched"
            )
        cursor = json.loads(context.cursor) if context.cursor else {}
        now = clock()
        client = redis.client()
        try:
            state, persisted = _read_state(client, now)
        except REDIS_DOWN as exc:
            problem = redact(f"{type(exc).__name__}: {exc}", secrets_in(redis.url))
            return dg.SkipReason(f"Redis at {_where(redis.url)} unreachable: {problem}")
        events: list = []
        moved = state.progress() != cursor.get("progress")
        if moved and state.workers:
            partition = _partition_of(state.last_bar_end_s - 0.001) if state.last_bar_end_s else None
            events.append(
                dg.AssetObservation(asset_key=intraday_bars.key, partition=partition, metadata=state.metadata())
            )
        reported = dict(cursor.get("persisted", {}))
        for date, written in sorted(persisted.items()):
            if reported.get(date) != _digest(written):
                if _partition_of(pd.Timestamp(date, tz=TIMEZONE).timestamp()) is None:
                    context.log.warning(f"persisted:{date} is not a trading-day partition: not reported")
                else:
                    events.append(_materialization(date, written))
                reported[date] = _digest(written)
        fresh = freshness(state, stale_after)
        verdict = "passed" if fresh.passed else "failed"
        if moved or verdict != cursor.get("verdict"):
            events.append(_evaluation(fresh, stale_after))
        if not fresh.passed and cursor.get("verdict") != "failed":
            context.log.warning(f"{CHECK_NAME} failed: {fresh.message}")
            alert = {
                "subscriber": "ops",
                "rule": "stream_stale",
                "ticker": "*",
                "value": fresh.age_seconds,
                "threshold": stale_after,
                "message": fresh.message,
                "as_of": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
                "model_version": None,
            }
            try:
                add_alert(client, alert)
            except REDIS_DOWN as exc:  # the check still turns red; the alert is tried again on the next tick
                context.log.warning(f"stream_stale alert not sent: {redact(str(exc), secrets_in(redis.url))}")
                verdict = "unalerted"
        context.update_cursor(
            json.dumps(
                {
                    "progress": state.progress(),
                    "persisted": {d: reported[d] for d in persisted},  # forget what the hash no longer holds
                    "verdict": verdict,
                }
            )
        )
        if not events:
            return dg.SkipReason(f"nothing new from {len(state.workers)} intraday worker(s); {fresh.message}")
        return dg.SensorResult(asset_events=events)

    return _sensor


intraday_stream_sensor = build_intraday_stream_sensor()


@dg.asset_check(asset=intraday_bars.key, name=CHECK_NAME)
def intraday_stream_fresh(redis: RedisResource) -> dg.AssetCheckResult:
    """Stale when, during the NYSE session, the newest worker status or bar end is older than 5 minutes (no worker
    at all counts as stale). intraday_stream_sensor evaluates it every 30 s; running it by hand evaluates it now."""
    if not redis.enabled:
        raise dg.Failure("Redis is not configured (set STOCKPRED_REDIS_URL)")
    state, _ = _read_state(redis.client(), _utc_now())
    fresh = freshness(state)
    return dg.AssetCheckResult(
        passed=fresh.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=fresh.message,
        metadata=fresh.metadata(STALE_AFTER_SECONDS),
    )
