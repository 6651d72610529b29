"""Push: refreshed predictions and alerts to clients as they land in the events stream, over SSE (`GET /events`)
and WebSocket (`/ws/events`).

One `Relay` per service worker: ONE background task reads `stockpred:events` (`stockpred_core.io.stream_events`)
with `XREAD BLOCK` in batches, from the stream's last id at start, and fans each entry out to the connected clients
of this worker through per-client bounded queues. Nothing a client does blocks the reader or the others: a client
whose queue overflows is dropped with a final `overflow` event (its last delivered id, to resume from).

Per client: `tickers=AAPL,MSFT` (none: all) and `kinds=predictions,alert` (default both). A predictions entry holds
many answers: a client gets ONE event per entry with only the answers of its tickers, none when none match. The
event id is the stream entry id, so a client resumes with `Last-Event-ID` (SSE header) or `last_event_id` (query
parameter; WebSocket: query parameter only): it first gets the entries after that id (XRANGE, exclusive start, read
in pages on the shared pool, no connection of its own), then the live ones. Hand-over without gap or duplicate: the
backlog is read up to the end, the client's queue is registered with the relay, the backlog is read once more from
where it stopped, and the queue then drops every live entry whose id is at or below the last backlog id. An id whose
successors were trimmed from the stream (or a stream that is gone) gets a `resync` event instead: fetch /predict
again; the stream goes on live.

Other events: `subscribed` (once, when live: the filters in force), `feed` ({"status": "interrupted"|"resumed"}
while the relay's Redis is away: it retries with backoff and keeps the clients connected; on resuming it catches up
from its last id, or sends `resync` when entries were trimmed meanwhile), `overflow` (last event: the client was too
slow). SSE sends a `: ping` comment every 15 s of silence; the WebSocket a {"event": "ping"} message.

Auth is the REST API's: the `X-API-Key` or `Authorization: Bearer` header, and, for these two routes only (a
browser's EventSource or WebSocket cannot set headers), the `api_key` query parameter; role reader. It is taken out
of the query string before anything else sees the request, and the audit line (one per stream, when it ends) never
holds a secret. SSE answers 401/403/429/400 as the REST API does; the WebSocket is accepted and then closed with
4401/4403/4429/4400 and the reason (a browser sees no HTTP status of a refused handshake, but it sees a close code).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import signal
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from bento.audit import request_line
from bento.guard import ANONYMOUS, ASK_FOR_KEY, Refusal, json_answer
from bento.pages import send_answer
from bento.rate_limit import too_many_requests
from bento.schemas import TICKER_PATTERN
from bento.security import allows
from stockpred_core.auth import TokenError
from stockpred_core.io.stream_events import ALERT, EVENTS_KEY, PREDICTIONS
from stockpred_core.resilience.retry import RetryPolicy

logger = logging.getLogger("bentoml.stockpred")

NEEDED_ROLE = "reader"
KINDS = frozenset({PREDICTIONS, ALERT})
HEARTBEAT_S = 15.0
QUEUE_EVENTS = 2_000  # per client: events waiting to be sent; past this the client is dropped (`overflow`)
SEND_TIMEOUT_S = 30.0  # a client that takes longer to take one write is dropped
READ_COUNT = 1_000  # entries per XREAD / XRANGE page
BLOCK_MS = 5_000
MAX_CLIENTS = 10_000  # per worker
MAX_TICKERS = 1_000  # per client filter
BACKOFF = RetryPolicy(backoff_base_s=0.1, backoff_max_s=5.0)  # its jittered delays; the relay retries forever
TOKEN_EXPIRED = "reconnect with a new token (from Last-Event-ID / last_event_id: nothing is lost)"
QUERY_CREDENTIALS = ("api_key", "access_token")  # an API key or a bearer token (JWT), for EventSource and WebSocket
STREAM_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
TICKER = re.compile(TICKER_PATTERN)
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]


def stream_id(raw: str) -> tuple[int, int] | None:
    """A stream entry id as a comparable pair ("1700000000000-3" -> (1700000000000, 3); "17" -> (17, 0))."""
    match = STREAM_ID.match(raw.strip())
    return (int(match[1]), int(match[2] or 0)) if match else None


def id_text(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


STOP_WAIT_S = 5.0  # how long stop() waits for the reader task and the connections to close


@dataclass(frozen=True, slots=True)
class Message:
    """One event for one client: the entry id (None for status events), its name and its JSON data."""

    id: str | None
    key: tuple[int, int] | None
    event: str
    data: bytes


def status_message(event: str, body: dict) -> Message:
    return Message(None, None, event, orjson.dumps(body))


class Client:
    """One connected client's filters and bounded queue. The relay `offer`s; the connection's task takes batches."""

    def __init__(
        self, tickers: frozenset[str] | None, kinds: frozenset[str], limit: int = QUEUE_EVENTS, owner: str | None = None
    ) -> None:
        self.tickers, self.kinds, self.limit = tickers, kinds, limit
        self.owner = owner  # a reader sees the alerts of its own subscriptions only; None: every alert (admin)
        self.expires_at: float | None = None  # a bearer token's `exp`: the stream ends there
        self.pending: deque[Message] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closing: str | None = None  # why the relay ends the stream (service stop)
        self.after: tuple[int, int] | None = None  # hand-over: live entries at or below this id were sent already
        self.last_sent: str | None = None

    def offer(self, message: Message) -> None:
        if self.overflowed:
            return
        if len(self.pending) >= self.limit:
            self.overflowed = True
            self.pending.clear()  # bounded memory: what it did not take is dropped, it resumes from `last_sent`
        else:
            self.pending.append(message)
        self.wake.set()

    async def take(self, timeout: float) -> list[Message] | None:
        """The waiting messages (entries at or below `after` left out); None after `timeout` of silence."""
        if not self.pending and not self.overflowed and self.closing is None:
            try:
                async with asyncio.timeout(timeout):
                    await self.wake.wait()
            except TimeoutError:
                return None
        self.wake.clear()
        batch = list(self.pending)
        self.pending.clear()
        if self.after is not None:
            batch = [m for m in batch if m.key is None or m.key > self.after]
        return batch

    def wants(self, kind: str) -> bool:
        return kind in self.kinds


class Entry:
    """One stream entry, parsed once however many clients get it."""

    __slots__ = ("_answers", "_head", "_subscriber", "data", "id", "key", "kind", "tickers")

    def __init__(self, entry_id: bytes, fields: dict) -> None:
        self.id = entry_id.decode()
        self.key = stream_id(self.id)
        self.kind = fields.get(b"kind", b"").decode()
        self.tickers = [t for t in fields.get(b"tickers", b"").decode().split("\n") if t]
        self.data = fields.get(b"data", b"null")
        if b"\n" in self.data or b"\r" in self.data:  # one SSE `data:` line: JSON re-dumped without newlines
            self.data = orjson.dumps(orjson.loads(self.data))
        self._answers: dict[str, bytes] | None = None
        self._head = b""
        self._subscriber: str | None = None

    def message(self, data: bytes) -> Message:
        return Message(self.id, self.key, self.kind, data)

    def for_client(self, client: Client, matched: list[str] | None = None) -> Message | None:
        """This entry as `client` sees it, or None: its kind filtered out, or none of its tickers."""
        if not client.wants(self.kind):
            return None
        if self.kind == ALERT and client.owner is not None and self.subscriber() != client.owner:
            return None  # another subscriber's alert
        if client.tickers is None:
            return self.message(self.data)
        if matched is None:
            matched = [t for t in self.tickers if t in client.tickers]
        if not matched:
            return None
        if self.kind != PREDICTIONS:
            return self.message(self.data)
        answers = self._split()
        parts = [answers[t] for t in dict.fromkeys(matched) if t in answers]
        if not parts:
            return None
        if len(parts) == len(answers):
            return self.message(self.data)
        return self.message(self._head + b"[" + b",".join(parts) + b"]}")

    def subscriber(self) -> str:
        """Whose subscription an alert entry fired for."""
        if self._subscriber is None:
            doc = orjson.loads(self.data)
            self._subscriber = str(doc.get("subscriber", "")) if isinstance(doc, dict) else ""
        return self._subscriber

    def _split(self) -> dict[str, bytes]:
        """ticker -> that answer's JSON, and the document's other fields as the head of a filtered copy."""
        if self._answers is None:
            doc = orjson.loads(self.data)
            if not isinstance(doc, dict):
                doc = {}
            answers = doc.pop("predictions", None) or []
            self._answers = {
                str(a.get("ticker")): orjson.dumps(a) for a in answers if isinstance(a, dict) and "ticker" in a
            }
            head = orjson.dumps(doc)[:-1]
            self._head = head + (b'"predictions":' if head == b"{" else b',"predictions":')
        return self._answers


class Relay:
    """The worker's one reader of the events stream and its clients."""

    def __init__(self, redis_url: str | None, metrics=None, block_ms: int = BLOCK_MS) -> None:
        self.redis_url, self.metrics, self.block_ms = redis_url, metrics, block_ms
        self.clients: set[Client] = set()
        self.unfiltered: set[Client] = set()
        self.by_ticker: dict[str, set[Client]] = {}
        self.up = True
        self.last_id: str | None = None
        self._task: asyncio.Task | None = None
        self._reader: aioredis.Redis | None = None
        self.pool: aioredis.Redis | None = None  # backlog reads and checks: a few shared connections
        self._rng = random.Random()
        self._signals: dict[int, object] = {}
        self.closing = False  # the worker is stopping: new streams are refused (503)

    @property
    def enabled(self) -> bool:
        return self.redis_url is not None

    async def start(self) -> None:
        if not self.enabled or self._task is not None:
            return
        options = {"socket_connect_timeout": 2.0, "socket_timeout": self.block_ms / 1000 + 5.0}
        self._reader = aioredis.Redis.from_url(self.redis_url, single_connection_client=True, **options)
        pool = aioredis.BlockingConnectionPool.from_url(self.redis_url, max_connections=4, timeout=10, **options)
        self.pool = aioredis.Redis(connection_pool=pool)
        self._task = asyncio.create_task(self._run(), name="stockpred-push-relay")
        self._chain_stop_signals()
        if self.metrics is not None:
            self.metrics.push_feed_up.set(1)

    def _chain_stop_signals(self) -> None:
        """End the streams as soon as the worker is told to stop. Uvicorn waits for every open response before the
        shutdown hooks run (`stop`), and a stream never ends by itself: without this, SIGTERM would wait forever on
        connected clients. The server's own handler (uvicorn's) still runs, after ours; `stop` puts it back."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum, frame, previous=previous) -> None:
                loop.call_soon_threadsafe(self.close_clients, "the service is stopping")
                previous(signum, frame)

            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread: no signals here, nothing to chain
                return
            self._signals[sig] = previous

    def close_clients(self, reason: str) -> None:
        """Ask every stream to end (it sends what it holds, then closes)."""
        self.closing = True
        for client in list(self.clients):
            client.closing = reason
            client.wake.set()

    async def stop(self) -> None:
        for sig, previous in self._signals.items():
            with contextlib.suppress(ValueError):
                signal.signal(sig, previous)
        self._signals.clear()
        self.close_clients("the service is stopping")
        if self._task is not None:
            self._task.cancel()
            # bounded: a read cancelled while its connection is half-open can take its socket's time to unwind, and
            # the service's shutdown (or a test) must not wait on it (asyncio.wait neither cancels nor raises)
            await asyncio.wait({self._task}, timeout=STOP_WAIT_S)
            self._task = None
        closing = [asyncio.ensure_future(conn.aclose()) for conn in (self._reader, self.pool) if conn is not None]
        if closing:
            await asyncio.wait(closing, timeout=STOP_WAIT_S)
        self._reader = self.pool = None

    # the clients

    def register(self, client: Client) -> None:
        if client in self.clients or client.overflowed:
            return
        self.clients.add(client)
        if client.tickers is None:
            self.unfiltered.add(client)
        else:
            for ticker in client.tickers:
                self.by_ticker.setdefault(ticker, set()).add(client)
        if self.metrics is not None:
            self.metrics.push_clients.inc()

    def unregister(self, client: Client) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        self.unfiltered.discard(client)
        for ticker in client.tickers or ():
            subscribers = self.by_ticker.get(ticker)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self.by_ticker[ticker]
        if self.metrics is not None:
            self.metrics.push_clients.dec()

    def broadcast(self, message: Message) -> None:
        for client in list(self.clients):
            self._offer(client, message)

    def _offer(self, client: Client, message: Message) -> None:
        client.offer(message)
        if client.overflowed:
            self.unregister(client)  # its connection sends `overflow` and ends

    def dispatch(self, entry: Entry) -> None:
        """One entry to every client that wants it: the unfiltered ones, and those of its tickers."""
        matched: dict[Client, list[str]] = {}
        for ticker in entry.tickers:
            for client in self.by_ticker.get(ticker, ()):
                matched.setdefault(client, []).append(ticker)
        for client in [*self.unfiltered, *matched]:
            message = entry.for_client(client, matched.get(client))
            if message is not None:
                self._offer(client, message)

    # the reader

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                if self.last_id is None:
                    self.last_id = await self._stream_end(self._reader)
                if not self.up:
                    await self._reader.ping()
                    await self._resumed()
                answer = await self._reader.xread({EVENTS_KEY: self.last_id}, count=READ_COUNT, block=self.block_ms)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                attempt += 1
                if self.up:
                    self.up = False
                    logger.warning("push relay: Redis unavailable (%s); retrying", type(exc).__name__)
                    self.broadcast(status_message("feed", {"status": "interrupted", "reason": "Redis unavailable"}))
                if self.metrics is not None:
                    self.metrics.push_feed_up.set(0)
                await asyncio.sleep(BACKOFF.delay(min(attempt, 16), self._rng))
                continue
            except Exception:  # a bug must not end the feed for every client: log it, go on after a pause
                logger.exception("push relay: unexpected error")
                await asyncio.sleep(1.0)
                continue
            attempt = 0
            for _, entries in answer or ():
                for entry_id, fields in entries:
                    try:
                        self.dispatch(Entry(entry_id, fields))
                    except (ValueError, KeyError, TypeError):
                        logger.warning("push relay: malformed events entry %s skipped", entry_id)
                    self.last_id = entry_id.decode()

    async def _resumed(self) -> None:
        gap = await self.gap_after(self.last_id, self._reader)
        self.up = True
        logger.info("push relay: Redis is back; resuming after %s", self.last_id)
        if self.metrics is not None:
            self.metrics.push_feed_up.set(1)
        self.broadcast(status_message("feed", {"status": "resumed"}))
        if gap is not None:
            self.broadcast(status_message("resync", gap))

    @staticmethod
    async def _stream_end(conn: aioredis.Redis) -> str:
        try:
            info = await conn.xinfo_stream(EVENTS_KEY)
        except ResponseError:  # no stream yet: every entry is new
            return "0-0"
        last = info.get("last-generated-id") or info.get(b"last-generated-id") or b"0-0"
        return last.decode() if isinstance(last, bytes) else str(last)

    async def gap_after(self, after: str, conn: aioredis.Redis | None = None) -> dict | None:
        """None when every entry after `after` is still in the stream, else why not (the body of `resync`)."""
        conn = conn or self.pool
        reason = {"last_event_id": after, "action": "fetch /predict again; live events follow"}
        try:
            info = await conn.xinfo_stream(EVENTS_KEY)
        except ResponseError:
            return {**reason, "reason": "the events stream is gone"}
        after_key = stream_id(after)

        def field(name: str) -> tuple[int, int] | None:
            value = info.get(name, info.get(name.encode()))
            if isinstance(value, (list, tuple)):  # first-entry: (id, fields)
                value = value[0] if value else None
            return stream_id(value.decode() if isinstance(value, bytes) else str(value)) if value else None

        first, last, deleted = field("first-entry"), field("last-generated-id"), field("max-deleted-entry-id")
        if first is None and last is not None and last > after_key:  # empty, but it had entries after ours
            return {**reason, "reason": "entries after this id were trimmed from the stream"}
        if first is not None and first > after_key:  # trimming starts at the head: ours and what followed are gone
            return {**reason, "reason": "this id is older than the stream's first entry (trimmed)"}
        if deleted is not None and deleted > after_key:  # XDEL of an entry after ours (Redis 7)
            return {**reason, "reason": "entries after this id were deleted from the stream"}
        return None
        first = info.get("first-entry") or info.get(b"first-entry")  # older Redis: the oldest entry left
        if first is not None and stream_id(first[0].decode()) > after_key:
            return {**reason, "reason": "this id is older than the stream's first entry"}
        return None

    async def backlog(self, client: Client, after: str):
        """The entries after `after` that `client` wants, in pages; registers it before the last page (hand-over)."""
        cursor = after
        registered = False
        client.after = stream_id(after)
        while True:
            entries = await self.pool.xrange(EVENTS_KEY, min=f"({cursor}", max="+", count=READ_COUNT)
            messages = []
            for entry_id, fields in entries:
                cursor = entry_id.decode()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    message = Entry(entry_id, fields).for_client(client)
                    if message is not None:
                        messages.append(message)
            client.after = max(client.after, stream_id(cursor))  # live entries up to here come from the backlog
            if messages:
                yield messages
            if len(entries) < READ_COUNT:
                if registered:
                    break
                self.register(client)  # live entries queue from here on; one more page closes the gap
                registered = True


# the routes


def query_params(scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


def take_api_key(scope) -> str | None:
    """The `api_key` (or RFC 6750's `access_token`) query parameter, removed from the scope's query string (nothing
    after this sees it)."""
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    keys = [v for k, v in pairs if k in QUERY_CREDENTIALS]
    if keys:
        kept = [(k, v) for k, v in pairs if k not in QUERY_CREDENTIALS]
        scope["query_string"] = urlencode(kept).encode("latin-1")
    return keys[0] if keys else None


@dataclass
class Subscription:
    tickers: frozenset[str] | None
    kinds: frozenset[str]
    last_event_id: str | None


def parse_subscription(params: dict[str, str], header_id: str | None) -> Subscription | str:
    """The client's filters and resume point, or why they are invalid."""
    raw = params.get("tickers", "").strip()
    tickers = None
    if raw:
        names = [t.strip().upper() for t in raw.split(",") if t.strip()]
        bad = [t for t in names if not TICKER.match(t)]
        if bad:
            return f"invalid ticker {bad[0][:40]!r}"
        if len(set(names)) > MAX_TICKERS:
            return f"at most {MAX_TICKERS} tickers per stream"
        tickers = frozenset(names)
    kinds = frozenset(k.strip() for k in params.get("kinds", "").split(",") if k.strip()) or KINDS
    if not kinds <= KINDS:
        return f"unknown kinds {sorted(kinds - KINDS)}: use {','.join(sorted(KINDS))}"
    last = header_id if header_id is not None else params.get("last_event_id")
    if last is not None and last.strip() == "":
        last = None
    if last is not None:
        key = stream_id(last)
        if key is None:
            return f"invalid last event id {last[:40]!r}: a stream entry id like 1700000000000-0"
        last = id_text(key)
    return Subscription(tickers, kinds, last)


async def authorize(service, headers: dict[bytes, bytes], query_key: str | None, audit: dict) -> Refusal | None:
    """The REST API's check (`bento.guard`) for the push routes: a key (header, else the `api_key` parameter) with
    the reader role; the connection is charged once to the key's rate limit."""
    guard = service.guard
    if query_key is not None and b"x-api-key" not in headers and b"authorization" not in headers:
        headers = {**headers, b"x-api-key": query_key.encode("utf-8", "replace")}
    key = await guard.authenticate(headers)
    audit["key_id"] = None
    if isinstance(key, TokenError):
        return guard.refuse_token(key, audit)
    if isinstance(key, str):
        guard._refused(key)
        message = "invalid API key" if key == "invalid" else "missing API key: send `X-API-Key: <key>`, "
        if key == "missing":
            message += "`Authorization: Bearer <key or token>` or (EventSource, WebSocket) the `api_key` parameter"
        return json_answer(401, {"error": message}, ASK_FOR_KEY)
    if key is ANONYMOUS:
        audit["role"] = None
    else:
        guard.note_caller(key, audit)
    if not allows(key.role, NEEDED_ROLE):
        return guard.forbidden(key, audit["route"], NEEDED_ROLE)
    limit = guard.limit(key)
    wait = await guard.wait_seconds(limit)
    if wait > 0:
        if guard.metrics is not None:
            guard.metrics.rate_limited.labels(audit["route"]).inc()
        return too_many_requests(limit, wait)
    return None


def alert_owner(audit: dict) -> str | None:
    """Whose alerts a client may read (docs/security.md): a reader its own subscriptions' (its API key id, or
    `jwt:<subject>` for a token, is the subscriber name), an admin and the open local service every subscriber's."""
    if audit.get("role") in (None, "admin"):
        return None
    return audit.get("key_id")


class _Endpoint:
    def __init__(self) -> None:
        self._service = None

    def service(self):
        if self._service is None:
            import bentoml

            self._service = bentoml.get_current_service()
        return self._service

    async def end(self, service, relay, client, tasks, scope, audit: dict, status: int, started, sent, reason) -> None:
        """A stream's teardown, either transport: its tasks stopped, the client unregistered, a dropped client
        counted, the audit line written."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        relay.unregister(client)
        if reason in ("overflow", "slow client"):
            self.dropped(service, "overflow" if reason == "overflow" else "send_timeout")
        self.finish(service, scope, audit, status, started, events=sent, ended=reason)

    def finish(self, service, scope, audit: dict, status: int, started: float, **extra) -> None:
        line = request_line(scope, audit, status, time.perf_counter() - started)
        service.audit.write({**line, **extra})

    def count_sent(self, service, transport: str, n: int) -> None:
        if n and service.metrics is not None:
            service.metrics.push_events.labels(transport).inc(n)

    def dropped(self, service, reason: str) -> None:
        if service.metrics is not None:
            service.metrics.push_dropped.labels(reason).inc()


def sse_frame(message: Message) -> bytes:
    head = b"id: " + message.id.encode() + b"\n" if message.id is not None else b""
    return head + b"event: " + message.event.encode() + b"\ndata: " + message.data + b"\n\n"


def ws_text(message: Message) -> str:
    ident = orjson.dumps(message.id)
    return (b'{"id":' + ident + b',"event":"' + message.event.encode() + b'","data":' + message.data + b"}").decode()


async def feed(relay: Relay, client: Client, subscription: Subscription, deliver) -> str:
    """Everything one connection gets, through `deliver(messages)`: the resume backlog (or `resync`), `subscribed`,
    then live events and heartbeats (`deliver([])`); returns why it ended (the client's leaving cancels it)."""
    if not relay.up:
        await deliver([status_message("feed", {"status": "interrupted", "reason": "Redis unavailable"})])
    if subscription.last_event_id is None:
        relay.register(client)
    else:
        try:
            gap = await relay.gap_after(subscription.last_event_id)
            if gap is not None:
                relay.register(client)
                await deliver([status_message("resync", gap)])
            else:
                async for messages in relay.backlog(client, subscription.last_event_id):
                    await deliver(messages)
        except RedisError:
            relay.register(client)
            await deliver(
                [
                    status_message(
                        "resync",
                        {
                            "last_event_id": subscription.last_event_id,
                            "reason": "Redis unavailable: the missed entries cannot be read",
                            "action": "fetch /predict again; live events follow",
                        },
                    )
                ]
            )
    filters = {"tickers": sorted(client.tickers) if client.tickers else None, "kinds": sorted(client.kinds)}
    await deliver([status_message("subscribed", filters)])
    while True:
        left = HEARTBEAT_S if client.expires_at is None else min(HEARTBEAT_S, client.expires_at - time.time())
        if left <= 0:
            await deliver([status_message("expired", {"error": "the access token expired", "action": TOKEN_EXPIRED})])
            return "token expired"
        batch = await client.take(left)
        if batch is None:
            if client.expires_at is None or time.time() < client.expires_at:
                await deliver([])
            continue
        if batch:
            await deliver(batch)
        if client.overflowed:
            return "overflow"
        if client.closing is not None:
            return "shutdown"


def overflow_message(client: Client) -> Message:
    return status_message(
        "overflow",
        {
            "error": f"this client fell more than {client.limit} events behind and is disconnected",
            "last_event_id": client.last_sent,
            "action": "reconnect with this last event id",
        },
    )


class SSEEndpoint(_Endpoint):
    """`GET /events`: a text/event-stream."""

    async def __call__(self, scope, receive, send) -> None:
        service, started = self.service(), time.perf_counter()
        query_key = take_api_key(scope)
        audit = {"route": "/events", "method": scope.get("method", "GET")}
        if scope.get("method") != "GET":
            return await send_answer(send, *json_answer(405, {"error": "use GET"}, [(b"allow", b"GET")]))
        headers = dict(scope["headers"])
        refusal = await authorize(service, headers, query_key, audit)
        relay: Relay = service.push
        if refusal is None:
            header_id = headers.get(b"last-event-id")
            subscription = parse_subscription(query_params(scope), header_id.decode("latin-1") if header_id else None)
            if isinstance(subscription, str):
                refusal = json_answer(400, {"error": subscription})
            elif not relay.enabled:
                refusal = json_answer(503, {"error": "push needs Redis (STOCKPRED_REDIS_URL): none configured"})
            elif relay.closing or len(relay.clients) >= MAX_CLIENTS:
                refusal = json_answer(503, {"error": "this worker is stopping or serves too many streams"})
        if refusal is not None:
            await send_answer(send, *refusal)
            return self.finish(service, scope, audit, refusal[0], started)
        client = Client(subscription.tickers, subscription.kinds, owner=alert_owner(audit))
        client.expires_at = audit.get("token_expires_at")
        sent, reason = 0, "client left"

        async def write(chunk: bytes) -> None:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def deliver(messages: list[Message]) -> None:
            nonlocal sent
            if not messages:
                return await write(b": ping\n\n")
            await write(b"".join(sse_frame(m) for m in messages))
            events = [m for m in messages if m.id is not None]
            if events:
                client.last_sent = events[-1].id
                sent += len(events)
                self.count_sent(service, "sse", len(events))
            return None

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        pump = asyncio.create_task(feed(relay, client, subscription, deliver))
        watch = asyncio.create_task(listen())
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done() and not pump.cancelled():
                if pump.exception() is not None:
                    reason = "slow client" if isinstance(pump.exception(), TimeoutError) else "error"
                    if reason == "error":
                        logger.error("push: /events stream failed", exc_info=pump.exception())
                else:
                    reason = pump.result()
                    if reason == "overflow":
                        with contextlib.suppress(Exception):
                            await write(sse_frame(overflow_message(client)))
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.end(service, relay, client, (pump, watch), scope, audit, 200, started, sent, reason)


class WebSocketEndpoint(_Endpoint):
    """`/ws/events`: JSON text messages {"id", "event", "data"}."""

    async def __call__(self, scope, receive, send) -> None:
        service, started = self.service(), time.perf_counter()
        query_key = take_api_key(scope)
        audit = {"route": "/ws/events", "method": "WEBSOCKET"}
        if (await receive())["type"] != "websocket.connect":
            return None
        await send({"type": "websocket.accept"})
        headers = dict(scope["headers"])
        refusal = await authorize(service, headers, query_key, audit)
        relay: Relay = service.push
        code = None
        if refusal is not None:
            code, error = 4000 + refusal[0], orjson.loads(refusal[1])["error"]
        else:
            subscription = parse_subscription(query_params(scope), None)
            if isinstance(subscription, str):
                code, error = 4400, subscription
            elif not relay.enabled or relay.closing or len(relay.clients) >= MAX_CLIENTS:
                code, error = 4503, "push is unavailable on this worker (no Redis, or too many streams)"
        if code is not None:
            await send({"type": "websocket.send", "text": orjson.dumps({"event": "error", "data": error}).decode()})
            await send({"type": "websocket.close", "code": code, "reason": error[:120]})
            return self.finish(service, scope, audit, code - 4000, started)
        client = Client(subscription.tickers, subscription.kinds, owner=alert_owner(audit))
        client.expires_at = audit.get("token_expires_at")
        sent, reason = 0, "client left"

        async def deliver(messages: list[Message]) -> None:
            nonlocal sent
            if not messages:
                messages = [status_message("ping", {})]
            async with asyncio.timeout(SEND_TIMEOUT_S):
                for message in messages:
                    await send({"type": "websocket.send", "text": ws_text(message)})
            events = [m for m in messages if m.id is not None]
            if events:
                client.last_sent = events[-1].id
                sent += len(events)
                self.count_sent(service, "websocket", len(events))

        async def listen() -> None:
            while (await receive())["type"] != "websocket.disconnect":
                pass  # what the client sends is ignored

        pump = asyncio.create_task(feed(relay, client, subscription, deliver))
        watch = asyncio.create_task(listen())
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done() and not pump.cancelled():
                close = (1011, "server error")
                if pump.exception() is not None:
                    reason = "slow client" if isinstance(pump.exception(), TimeoutError) else "error"
                    if reason == "error":
                        logger.error("push: /ws/events stream failed", exc_info=pump.exception())
                    else:
                        close = (1008, "client too slow")
                else:
                    reason = pump.result()
                    if reason == "token expired":
                        close = (4401, "the access token expired: reconnect with a new one")
                    elif reason == "overflow":
                        close = (1008, "client too slow: event queue overflow, resume from last_event_id")
                        with contextlib.suppress(Exception):
                            async with asyncio.timeout(SEND_TIMEOUT_S):
                                await send({"type": "websocket.send", "text": ws_text(overflow_message(client))})
                    else:
                        close = (1001, "the service is stopping")
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": close[0], "reason": close[1]})
        finally:
            await self.end(service, relay, client, (pump, watch), scope, audit, 101, started, sent, reason)


def app() -> Starlette:
    """The push routes as one ASGI app, mounted in the service at / (after BentoML's own routes)."""
    return Starlette(routes=[Route("/events", SSEEndpoint()), WebSocketRoute("/ws/events", WebSocketEndpoint())])
