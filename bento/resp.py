"""A pipelined Redis connection for the service's hot path: one script call per request, nothing else.

redis-py's asyncio client checks a connection out of its pool, packs, sends, waits and checks it back in for every
command; on a cache hit that was a third of the service's own CPU per request (profiled under load with py-spy).
Here every command is written to one shared connection as soon as it is issued and the replies, which Redis sends in
order, resolve the callers' futures in order: no pool, no lock, one `write` per command. Redis runs commands one at
a time anyway, so one connection per worker loses no throughput.

Errors follow redis-py's types, so `RedisLink`'s circuit breaker treats both clients alike: a lost or refused
connection is `ConnectionError` (`AuthenticationError` when AUTH or SELECT fails), a reply that does not come within
`timeout` is `TimeoutError` (the connection is dropped then, since later replies would no longer match their callers),
an error reply is `ResponseError`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float


def pack(args: tuple[Arg, ...] | list[Arg]) -> bytes:
    """One command in the Redis protocol (RESP2): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif not isinstance(arg, bytes):
            arg = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _tls_context(options: dict) -> ssl.SSLContext:
    """TLS for a rediss:// URL, with redis-py's query options: ssl_ca_certs, ssl_cert_reqs (none, optional,
    required), ssl_check_hostname, ssl_certfile and ssl_keyfile."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    required = str(options.get("ssl_cert_reqs", "required")).lower()
    if options.get("ssl_check_hostname") is False or required in ("none", "optional"):
        context.check_hostname = False
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL}.get(required, ssl.CERT_REQUIRED)
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    return context


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future, float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("Redis sent a reply to no command"))
                return
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    """`execute(*args)` and `evalsha(script, keys, args)` over one pipelined connection, opened on first use and
    again after a failure."""

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.options = parse_url(url)
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        self._watchdog: asyncio.Task | None = None

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        if self._connecting is None:  # the first caller connects, the others wait for it
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        kind = options.get("connection_class")
        try:
            if kind is UnixDomainSocketConnection:
                make = loop.create_unix_connection(_Protocol, options["path"])
            else:
                tls = _tls_context(options) if kind is SSLConnection else None
                make = loop.create_connection(
                    _Protocol, options.get("host", "localhost"), options.get("port", 6379), ssl=tls
                )
            _, protocol = await asyncio.wait_for(make, self.timeout)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        self._protocol = protocol
        setup = []
        if options.get("password"):
            auth = ("AUTH", options["username"], options["password"]) if options.get("username") else None
            setup.append(auth or ("AUTH", options["password"]))
        if options.get("db"):
            setup.append(("SELECT", options["db"]))
        try:
            for command in setup:
                await self.execute(*command)
        except ResponseError as exc:  # a wrong password, a missing database: this connection is of no use
            protocol.fail(RedisConnectionError(str(exc)))
            raise AuthenticationError(f"Redis refused the connection's setup: {exc}") from exc
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch())
        return protocol

    async def _watch(self) -> None:
        """Drop the connection when its oldest command has waited longer than the timeout."""
        interval = min(0.1, self.timeout / 2)
        while True:
            await asyncio.sleep(interval)
            protocol = self._protocol
            if protocol is None or protocol.closed:
                continue
            if protocol.waiting and time.monotonic() - protocol.waiting[0][1] > self.timeout:
                protocol.fail(RedisTimeoutError(f"no reply from Redis within {self.timeout} s"))

    async def execute(self, *args: Arg):
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connection()
            if protocol.closed:  # lost while this caller waited to resume: its reply would never come
                raise RedisConnectionError("connection to Redis lost before the command was sent")
        # from here to the write nothing awaits, so the connection cannot be lost in between
        future = asyncio.get_running_loop().create_future()
        protocol.waiting.append((future, time.monotonic()))
        protocol.transport.write(pack(args))
        reply = await future
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def evalsha(self, script, keys: list[str], args: list[Arg]):
        """Run a registered script (redis-py `Script`: `.sha`, `.script`), loading it when Redis does not know it."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", script.script)
        return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._protocol is not None and not self._protocol.closed:
            self._protocol.closed = True
            self._protocol.transport.close()
