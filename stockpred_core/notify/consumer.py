"""The delivery loop: alerts from the alerts stream (`stockpred:alerts`) to the subscribers' channels.

A Redis consumer group (default `stockpred-notify`) shares the stream's alerts among any number of loops; each entry
is acknowledged after its delivery finished (sent, duplicate, suppressed or dead-lettered), so a loop that dies
leaves it pending: at start a loop re-reads its own pending entries, and every `claim_idle_s` it claims the entries
another consumer left idle that long (XAUTOCLAIM). Redelivered alerts are not sent twice (the dispatcher's
idempotency keys). Entries of other kinds are acknowledged and skipped. Each alert is delivered with `id`: its
alerts entry id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis

from stockpred_core.alerts import RedisSubscriptions, Subscription
from stockpred_core.io.stream_events import ALERT, ALERTS_KEY, parse_event
from stockpred_core.notify.dispatcher import Delivery, Dispatcher

log = logging.getLogger("stockpred.notify")

GROUP = "stockpred-notify"


class Subscribers:
    """The subscriptions of a file and of the Redis hash (a subscriber in both: Redis wins, as the stream does)."""

    def __init__(self, from_file: Sequence[Subscription] = (), from_redis: RedisSubscriptions | None = None) -> None:
        self.from_file, self.from_redis = list(from_file), from_redis
        self._by_name = {s.subscriber: s for s in self.from_file}

    def get(self, subscriber: str) -> Subscription | None:
        found = self.from_redis.poll() if self.from_redis is not None else None
        if found is not None:
            self._by_name = {s.subscriber: s for s in self.from_file} | {s.subscriber: s for s in found}
        return self._by_name.get(subscriber)

    def all(self) -> list[Subscription]:
        self.get("")
        return list(self._by_name.values())


class DeliveryLoop:
    """Reads alerts with XREADGROUP, delivers them through `dispatcher`, acknowledges them."""

    def __init__(
        self,
        client: redis.Redis,
        dispatcher: Dispatcher,
        subscribers: Subscribers,
        *,
        group: str = GROUP,
        consumer: str = "notify-1",
        stream: str = ALERTS_KEY,
        count: int = 100,
        block_ms: int = 5000,
        claim_idle_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.dispatcher, self.subscribers = client, dispatcher, subscribers
        self.group, self.consumer, self.stream, self.count, self.block_ms = group, consumer, stream, count, block_ms
        self.claim_idle_s, self.clock = claim_idle_s, clock
        self._own_pending = True  # first, what this consumer read and did not acknowledge before a restart
        self._claimed_at = clock()
        self.delivered: list[Delivery] = []  # the deliveries of the last `run_once`

    def ensure_group(self, start: str = "$") -> None:
        """Create the consumer group (at `start`: `$` new entries only, `0` the whole stream) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run_once(self, block_ms: int | None = None) -> int:
        """One read (own pending entries first, then idle ones of others, then new ones); how many entries."""
        self.delivered = []
        entries = []
        if self._own_pending:
            reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.count)
            entries = reply[0][1] if reply else []
            self._own_pending = bool(entries)
        if not entries and self.clock() - self._claimed_at >= self.claim_idle_s:
            self._claimed_at = self.clock()
            reply = self.client.xautoclaim(
                self.stream, self.group, self.consumer, int(self.claim_idle_s * 1000), "0-0", count=self.count
            )
            entries = [e for e in reply[1] if e[1]]  # entries trimmed from the stream come back empty
        if not entries:
            wait = self.block_ms if block_ms is None else block_ms
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=self.count, block=wait or None
            )
            entries = reply[0][1] if reply else []
        for entry_id, fields in entries:
            self._handle(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields)
        return len(entries)

    def _handle(self, entry_id: str, fields: dict) -> None:
        try:
            kind, _, data = parse_event(fields)
        except (KeyError, ValueError) as exc:
            log.warning("events entry %s is malformed (%s): acknowledged and skipped", entry_id, exc)
            kind = None
        if kind == ALERT:
            alert = {**data, "id": entry_id}
            subscription = self.subscribers.get(str(alert.get("subscriber", "")))
            if subscription is None:
                log.warning("alert %s: no subscription %r (deleted?): not delivered", entry_id, alert.get("subscriber"))
            else:
                try:
                    self.delivered.extend(self.dispatcher.deliver_alert(alert, subscription))
                except redis.RedisError as exc:  # left pending: delivered again later, once
                    log.error("alert %s: Redis failed during delivery (%s); left pending", entry_id, exc)
                    return
        self.client.xack(self.stream, self.group, entry_id)

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Deliver until `stop()` is true; Redis errors are logged and retried after a pause."""
        while not stop():
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.error("the delivery loop lost Redis (%s); retrying in 1 s", exc)
                time.sleep(1.0)
