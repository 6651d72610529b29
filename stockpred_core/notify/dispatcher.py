"""Reliable delivery: idempotency, retries with backoff, dead letters, a per-subscriber rate limit and quiet hours.

For each alert and each of the subscriber's channels for its rule (`Subscription.rule_channels`):
1. duplicate? The idempotency key of (alert id, subscriber, channel) is claimed with `SET NX` (a lease of
   `lease_s` while sending), then set to `sent` / `dead` / `suppressed:<why>` for `ttl_s`. A retry, a redelivery of
   the same events entry, or a second worker finds the key and does not send again. A process that dies while
   sending leaves the lease, which expires: the redelivered alert is then sent (at-least-once).
2. quiet hours (in the subscriber's time zone): the alert is DROPPED, not deferred (an intraday alert is stale by
   the morning; the daily report carries the day's alerts), and recorded on `stockpred:notify:suppressed`.
3. rate limit: at most `max_per_hour` alerts per subscriber, by the project's GCRA limiter in Redis (a burst of
   `max_per_hour`, then one every 3600 / max_per_hour seconds); over it the alert is dropped and recorded likewise.
   An alert counts once, whatever its channels.
4. send, retried on transient failures (5xx, 429, timeouts, SMTP 4xx) under the project's retry policy
   (exponential full-jitter backoff). After the last try, or at once on a permanent failure (other 4xx, SMTP 5xx, a
   channel not configured), a dead letter goes to the Redis stream `stockpred:notify:dead` with the reason. Reasons
   are redacted: no password, token, webhook secret or webhook URL reaches a log, a record or an exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson
import redis

from stockpred_core.alerts import Subscription
from stockpred_core.notify.channels import Channel, DeliveryError, Notification, TransientDeliveryError
from stockpred_core.notify.message import alert_notification
from stockpred_core.redaction import redact
from stockpred_core.resilience.rate_limit import GCRA_SCRIPT, LocalRateLimiter, interval_us
from stockpred_core.resilience.retry import RetryPolicy

log = logging.getLogger("stockpred.notify")

PREFIX = "stockpred:notify"
DEAD_KEY = f"{PREFIX}:dead"
SUPPRESSED_KEY = f"{PREFIX}:suppressed"
RECORDS_MAXLEN = 10_000
IDEMPOTENCY_TTL_S = 7 * 86_400
LEASE_S = 300.0

SENT, DUPLICATE, DEAD, QUIET_HOURS, RATE_LIMITED, NO_CHANNEL = (
    "sent",
    "duplicate",
    "dead",
    "quiet_hours",
    "rate_limited",
    "no_channel",
)


def idempotency_key(ref: str, subscriber: str, channel: str) -> str:
    """The key of one delivery: (alert id or report ref, subscriber, channel) hashed, 32 hex characters."""
    return hashlib.sha256(f"{ref}\x00{subscriber}\x00{channel}".encode()).hexdigest()[:32]


class IdempotencyStore(Protocol):
    def seen(self, key: str) -> bool: ...

    def claim(self, key: str, lease_s: float) -> bool:
        """True when `key` was free and is now leased to the caller."""
        ...

    def settle(self, key: str, state: str, ttl_s: float) -> None: ...

    def release(self, key: str) -> None: ...


class RedisIdempotency:
    """Keys `<prefix>:idem:<key>` in Redis: SET NX with a lease, then the outcome with a TTL."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self.client, self.prefix = client, prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def seen(self, key: str) -> bool:
        return bool(self.client.exists(self._key(key)))

    def claim(self, key: str, lease_s: float) -> bool:
        return bool(self.client.set(self._key(key), "sending", nx=True, px=max(1, int(lease_s * 1000))))

    def settle(self, key: str, state: str, ttl_s: float) -> None:
        self.client.set(self._key(key), state, px=max(1, int(ttl_s * 1000)))

    def release(self, key: str) -> None:
        self.client.delete(self._key(key))


class FileIdempotency:
    """Marker files in a folder (for a process without Redis: the `insights` asset on the embedded default). A claim
    is an exclusive create; outcomes do not expire (the folder is per report day)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def seen(self, key: str) -> bool:
        return (self.folder / key).exists()

    def claim(self, key: str, lease_s: float) -> bool:
        try:
            with open(self.folder / key, "x") as marker:
                marker.write("sending")
        except FileExistsError:
            return False
        return True

    def settle(self, key: str, state: str, ttl_s: float) -> None:
        (self.folder / key).write_text(state)

    def release(self, key: str) -> None:
        (self.folder / key).unlink(missing_ok=True)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one (alert, subscriber, channel): status is sent, duplicate, dead, quiet_hours, rate_limited or
    no_channel; `reason` is redacted."""

    subscriber: str
    channel: str | None
    status: str
    attempts: int = 0
    receipt: str | None = None
    reason: str | None = None


class Dispatcher:
    """Delivers notifications through `channels` (name -> Channel). `client`: Redis for the idempotency keys, the
    rate limits, the dead letters and the suppressed records; without it, give `store` (the limits are then per
    process and the records only logged)."""

    def __init__(
        self,
        client: redis.Redis | None,
        channels: Mapping[str, Channel],
        *,
        store: IdempotencyStore | None = None,
        retry: RetryPolicy | None = None,
        ttl_s: float = IDEMPOTENCY_TTL_S,
        lease_s: float = LEASE_S,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        prefix: str = PREFIX,
    ) -> None:
        if client is None and store is None:
            raise ValueError("a Dispatcher without Redis needs an idempotency store")
        self.client, self.channels = client, dict(channels)
        self.store = store or RedisIdempotency(client, prefix)
        self.retry = retry or RetryPolicy(max_attempts=4, backoff_base_s=1.0, backoff_max_s=30.0)
        self.ttl_s, self.lease_s, self.now, self.sleep, self.rng = ttl_s, lease_s, now, sleep, rng or random.Random()
        self.prefix = prefix
        self.dead_key, self.suppressed_key = f"{prefix}:dead", f"{prefix}:suppressed"
        self._local_limits = LocalRateLimiter()
        self._gcra = client.register_script(GCRA_SCRIPT) if client is not None else None

    # --- alerts ---

    def deliver_alert(self, alert: Mapping, subscription: Subscription) -> list[Delivery]:
        """Notify `subscription`'s channels for the alert's rule (the alert carries its events entry `id`)."""
        subscriber, alert_id = subscription.subscriber, str(alert["id"])
        channels = subscription.rule_channels(str(alert.get("rule", "")))
        if not channels:
            return [Delivery(subscriber, None, NO_CHANNEL, reason="the subscriber has no channel for this rule")]
        keys = {c: idempotency_key(alert_id, subscriber, c) for c in channels}
        out = [Delivery(subscriber, c, DUPLICATE) for c in channels if self.store.seen(keys[c])]
        pending = [c for c in channels if not self.store.seen(keys[c])]
        if not pending:
            return out
        why = None
        if subscription.in_quiet_hours(self.now()):
            why = QUIET_HOURS
        elif subscription.max_per_hour is not None and not self._admit(subscriber, subscription.max_per_hour):
            why = RATE_LIMITED
        if why is not None:
            for channel in pending:
                self.store.settle(keys[channel], f"suppressed:{why}", self.ttl_s)
            self._record(self.suppressed_key, {"reason": why, "channels": ",".join(pending)}, alert, subscriber)
            log.info("alert %s for %s not sent: %s", alert_id, subscriber, why)
            return [*out, *(Delivery(subscriber, c, why) for c in pending)]
        notification = alert_notification(alert)
        for channel in pending:
            out.append(
                self.deliver(channel, subscription.channels[channel], notification, keys[channel], subscriber, alert_id)
            )
        return out

    def _admit(self, subscriber: str, per_hour: int) -> bool:
        key, rate = f"{self.prefix}:rate:{subscriber}", per_hour / 3600.0
        if self._gcra is None:
            return self._local_limits.wait_seconds(key, rate, per_hour) == 0.0
        return int(self._gcra(keys=[key], args=[interval_us(rate), per_hour])) == 0

    # --- one notification ---

    def deliver(
        self, channel: str, address: str, notification: Notification, key: str, subscriber: str, ref: str
    ) -> Delivery:
        """Send `notification` on `channel` to `address` once for `key`: retried while transient, dead-lettered after
        the last try or on a permanent failure. `ref` (the alert id, a report's name) goes into the records."""
        if not self.store.claim(key, self.lease_s):
            return Delivery(subscriber, channel, DUPLICATE)
        sender = self.channels.get(channel)
        if sender is None:
            reason = f"{channel}: the channel is not configured"
            return self._dead(key, subscriber, channel, ref, notification, reason, 0)
        attempts = 0

        def attempt() -> str:
            nonlocal attempts
            attempts += 1
            return sender.send(address, notification, key)

        def on_retry(number: int, failure: BaseException, delay: float) -> None:
            log.warning("%s to %s: try %d failed (%s); again in %.2fs", channel, subscriber, number, failure, delay)

        try:
            receipt = self.retry.call(
                attempt, retry_on=TransientDeliveryError, sleep=self.sleep, rng=self.rng, on_retry=on_retry
            )
        except DeliveryError as exc:
            reason = redact(str(exc), sender.secrets(address))
            return self._dead(key, subscriber, channel, ref, notification, reason, attempts)
        except BaseException:
            self.store.release(key)  # an unexpected error: let a redelivery try again
            raise
        self.store.settle(key, SENT, self.ttl_s)
        log.info("%s sent to %s (%s, %d attempts)", channel, subscriber, ref, attempts)
        return Delivery(subscriber, channel, SENT, attempts, receipt)

    def _dead(
        self, key: str, subscriber: str, channel: str, ref: str, notification: Notification, reason: str, attempts: int
    ) -> Delivery:
        self.store.settle(key, DEAD, self.ttl_s)
        fields = {"channel": channel, "reason": reason, "attempts": str(attempts), "subject": notification.subject}
        self._record(self.dead_key, fields, {"id": ref}, subscriber)
        log.error("%s to %s dead-lettered after %d attempts: %s", channel, subscriber, attempts, reason)
        return Delivery(subscriber, channel, DEAD, attempts, reason=reason)

    def _record(self, stream: str, fields: Mapping[str, str], alert: Mapping, subscriber: str) -> None:
        """XADD a record (no addresses: a webhook URL is a secret) to `stream`; logged only without Redis."""
        entry = {
            **fields,
            "alert_id": str(alert.get("id", "")),
            "subscriber": subscriber,
            "at": self.now().isoformat(),
            "alert": orjson.dumps({k: v for k, v in alert.items() if k != "id"}),
        }
        if self.client is None:
            log.warning("%s: %s", stream, {k: v for k, v in entry.items() if k != "alert"})
            return
        self.client.xadd(stream, entry, maxlen=RECORDS_MAXLEN, approximate=True)


def read_records(client: redis.Redis, stream: str = DEAD_KEY, count: int = 100) -> list[dict[str, str]]:
    """The latest `count` records of a stream (dead letters by default), newest first, decoded, with their `id`."""
    return [
        {"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
        for entry_id, fields in client.xrevrange(stream, count=count)
    ]
