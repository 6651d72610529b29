"""Redis Streams as the bars' bus: sharded by ticker, one consumer group per shard stream, at-least-once delivery.

A ticker always lands on the same shard (crc32(ticker) % shards) and a shard is read by one consumer at a time, so
one ticker's bars are handled in order by one worker. Streams are capped (MAXLEN ~). A reader acknowledges a batch only
after its effects are stored (`GroupReader.ack`), claims every pending entry of its shards when it starts (a crashed
worker's unacknowledged batch is read again), and recreates its group when Redis lost it (restarted empty).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import redis

from stream.bars import Bar

logger = logging.getLogger("stockpred.stream")

PREFIX = "stockpred:bars"
GROUP = "stockpred-stream"
DEFAULT_MAXLEN = 1_000_000  # entries per shard stream (~ a trading day of 1-second bars for 40 tickers)
DEAD_MAXLEN = 100_000


def shard_of(ticker: str, shards: int) -> int:
    """The shard of `ticker`: stable across processes and restarts (Python's hash() is salted per process)."""
    return zlib.crc32(ticker.encode()) % shards


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as read: `fields` is empty when the entry was trimmed (MAXLEN) before it was read."""

    stream: str
    id: bytes
    fields: Mapping[bytes, bytes]


class BarBus:
    """The shard streams, their consumer group and the dead-letter stream, on one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        shards: int,
        *,
        prefix: str = PREFIX,
        group: str = GROUP,
        maxlen: int = DEFAULT_MAXLEN,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.client, self.shards, self.prefix, self.group, self.maxlen = client, shards, prefix, group, maxlen
        self.dead_letter = f"{prefix}:dead"

    def stream(self, shard: int) -> str:
        return f"{self.prefix}:{shard}"

    def stream_of(self, ticker: str) -> str:
        return self.stream(shard_of(ticker, self.shards))

    def publish(self, bars: Iterable[Bar], batch: int = 1000) -> int:
        """XADD every bar to its shard, pipelined `batch` at a time (one round trip each); how many were added."""
        pipe, n = self.client.pipeline(transaction=False), 0
        for bar in bars:
            pipe.xadd(self.stream_of(bar.ticker), bar.to_fields(), maxlen=self.maxlen, approximate=True)
            n += 1
            if n % batch == 0:
                pipe.execute()
        pipe.execute()
        return n

    def publish_fields(self, ticker: str, fields: Mapping[str, str]) -> bytes:
        """XADD an entry as given (a source's raw fields), to `ticker`'s shard; its id."""
        return self.client.xadd(self.stream_of(ticker), dict(fields), maxlen=self.maxlen, approximate=True)

    def ensure_group(self, shard: int) -> bool:
        """Create the shard's group (and stream) reading from the start unless it exists; True when created."""
        try:
            self.client.xgroup_create(self.stream(shard), self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    def pending_count(self) -> int:
        """Entries delivered to a consumer and not yet acknowledged, over all shards."""
        total = 0
        for shard in range(self.shards):
            try:
                total += self.client.xpending(self.stream(shard), self.group)["pending"]
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
        return total


class GroupReader:
    """One consumer's reads of its shards: its pending entries first, then new ones, `count` per stream per read."""

    def __init__(
        self, bus: BarBus, shards: Sequence[int], consumer: str, *, count: int = 1000, block_ms: int = 500
    ) -> None:
        self.bus, self.consumer, self.count, self.block_ms = bus, consumer, count, block_ms
        self.streams = [bus.stream(shard) for shard in shards]
        self._shards = list(shards)
        self._replaying: set[str] = set(self.streams)  # streams whose own pending entries come before new ones
        self.last_id: dict[str, bytes] = {}  # per stream, the last entry id read (reported when a group is lost)
        self.group_recreated = 0
        self.trimmed = 0  # pending entries found trimmed from the stream: lost before they were handled
        self._started = False

    def recover(self) -> int:
        """Make sure the groups exist, claim every pending entry of these shards (a crashed consumer's too), and
        read pending entries again before new ones; how many entries were claimed from other consumers.

        A shard has one consumer at a time, so claiming regardless of idle time is safe and keeps the order: the
        claimed entries join this consumer's pending list, which is re-read from the start in id order. The former
        consumers (a crashed process, an earlier pod) are then removed from the group."""
        self._ensure_groups()
        claimed = 0
        for stream in self.streams:
            start: bytes | str = "0-0"
            while True:
                # not JUSTID: redis-py drops the cursor from that reply
                start, entries, *deleted = self.bus.client.xautoclaim(
                    stream, self.bus.group, self.consumer, 0, start_id=start, count=self.count
                )
                claimed += len(entries)
                gone = len(deleted[0]) if deleted else 0  # pending, but trimmed away: Redis drops them from the PEL
                if gone:
                    self.trimmed += gone
                    logger.warning(
                        "%d pending entries of %s were trimmed (MAXLEN) before they were handled", gone, stream
                    )
                if start in (b"0-0", "0-0"):
                    break
            for other in self.bus.client.xinfo_consumers(stream, self.bus.group):  # all emptied by the claim
                if _text(other["name"]) != self.consumer:
                    self.bus.client.xgroup_delconsumer(stream, self.bus.group, other["name"])
        if claimed:
            logger.warning("consumer %s claimed %d pending entries of other consumers", self.consumer, claimed)
        self._replaying = set(self.streams)
        return claimed

    def read(self) -> list[Entry]:
        """The next batch: pending entries of this consumer while there are any, else new entries (blocking up to
        block_ms). A lost group (NOGROUP: Redis restarted empty) is recreated, logged and counted."""
        try:
            if self._replaying:
                streams = {stream: "0" for stream in self.streams if stream in self._replaying}
                reply = self.bus.client.xreadgroup(self.bus.group, self.consumer, streams, count=self.count)
                got = {_text(name) for name, items in reply if items}
                self._replaying &= got  # a stream with no pending history left reads new entries from now on
                if got:
                    return self._entries(reply)
            reply = self.bus.client.xreadgroup(
                self.bus.group, self.consumer, dict.fromkeys(self.streams, ">"), count=self.count, block=self.block_ms
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._ensure_groups()
            self._replaying = set(self.streams)
            return []
        return self._entries(reply or [])

    def ack(self, entries: Sequence[Entry], dead: Sequence[tuple[Entry, str]] = ()) -> None:
        """Dead-letter the malformed entries and acknowledge the batch, in one transaction."""
        by_stream: dict[str, list[bytes]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.id)
        pipe = self.bus.client.pipeline(transaction=True)
        for entry, reason in dead:
            pipe.xadd(self.bus.dead_letter, _dead_fields(entry, reason), maxlen=DEAD_MAXLEN, approximate=True)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.bus.group, *ids)
        pipe.execute()

    def _entries(self, reply: list) -> list[Entry]:
        entries = []
        for name, items in reply:
            stream = _text(name)
            entries.extend(Entry(stream, entry_id, fields or {}) for entry_id, fields in items)
            if items:
                self.last_id[stream] = items[-1][0]
        return entries

    def _ensure_groups(self) -> None:
        """Create missing groups: at the first start that is setup; later it means Redis lost them (restarted empty),
        which is logged with the last entry read before, and counted."""
        for shard in self._shards:
            stream = self.bus.stream(shard)
            if not self.bus.ensure_group(shard):
                continue
            if not self._started:
                logger.info("created consumer group %s on %s", self.bus.group, stream)
                continue
            self.group_recreated += 1
            last = self.last_id.get(stream)
            logger.warning(
                "consumer group %s on %s was gone (Redis restarted empty?): recreated, reading the stream from its "
                "start; entries after %s not yet acknowledged were lost with it (a gap)",
                self.bus.group,
                stream,
                last.decode() if last else "the start",
            )
        self._started = True


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _dead_fields(entry: Entry, reason: str) -> dict[str, str]:
    original = {_text(k): v.decode(errors="backslashreplace") for k, v in entry.fields.items()}
    return {"reason": reason, "stream": entry.stream, "id": entry.id.decode(), "entry": json.dumps(original)}
