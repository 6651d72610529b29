"""An open-loop HTTP/1.1 load generator on asyncio (uvloop when installed), for loopback benchmarks.

Open loop: request i is due at start + i / rate whatever happened to the ones before, and its latency counts from
that due time, so a stalled server shows up as latency instead of silently lowering the offered rate (coordinated
omission). Requests go over a fixed pool of keep-alive connections written with raw sockets: a client library
would spend more CPU than the server under test on this 2-core machine.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Result:
    offered_rps: float
    duration_s: float
    sent: int = 0
    completed: int = 0
    errors: int = 0  # transport errors and timeouts
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def achieved_rps(self) -> float:
        return self.completed / self.duration_s if self.duration_s else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        return {
            "offered_rps": self.offered_rps,
            "achieved_rps": round(self.achieved_rps, 1),
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "statuses": dict(self.statuses),
            "p50_ms": round(self.pct(50), 2),
            "p90_ms": round(self.pct(90), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
        }


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            return status, b"".join(parts)
        return status, await self.reader.readexactly(length or 0)


async def _open(host: str, port: int, n: int) -> asyncio.Queue[Connection]:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(n):
        reader, writer = await asyncio.open_connection(host, port, limit=64 * 1024 * 1024)
        pool.put_nowait(Connection(reader, writer))
    return pool


async def open_loop(
    host: str,
    port: int,
    path: str,
    make_body: Callable[[int], bytes],
    rate: float,
    duration: float,
    headers: dict[str, str] | Callable[[int], dict[str, str]] | None = None,
    connections: int = 64,
    timeout: float = 10.0,
    keep_bodies: bool = False,
) -> Result:
    """Offer `rate` requests/s for `duration` seconds; each request's body is `make_body(i)`.

    The cyclic garbage collector is off while requests are in flight: the process driving the load has imported the
    world builder's libraries (pandas, MLflow, LightGBM), and one full collection of its heap stalled the sending for
    ~0.5 s, which showed up as the server's latency."""
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return await _open_loop(host, port, path, make_body, rate, duration, headers, connections, timeout, keep_bodies)
    finally:
        if collecting:
            gc.enable()


async def _open_loop(host, port, path, make_body, rate, duration, headers, connections, timeout, keep_bodies) -> Result:
    headers = headers or {}
    pool = await _open(host, port, connections)
    total = int(rate * duration)
    per_request = callable(headers)  # headers(i): a header set per request (a bearer token per client, say)
    raws = [request_bytes(host, port, path, make_body(i), headers(i) if per_request else headers) for i in range(total)]
    result = Result(offered_rps=rate, duration_s=duration)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []

    async def one(i: int, due: float) -> None:
        conn = await pool.get()
        try:
            status, body = await asyncio.wait_for(conn.exchange(raws[i]), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            conn.writer.close()
            try:
                reader, writer = await asyncio.open_connection(host, port, limit=64 * 1024 * 1024)
                pool.put_nowait(Connection(reader, writer))
            except OSError:
                pass
            return
        pool.put_nowait(conn)
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
        result.statuses[status] += 1
        result.completed += 1
        if keep_bodies:
            result.bodies.append(body)

    # uvloop's loop.time() ticks in milliseconds: due times and latencies use perf_counter
    start = time.perf_counter() + 0.05
    i = 0
    while i < total:
        due_index = min(total, int((time.perf_counter() - start) * rate) + 1)
        while i < due_index:
            tasks.append(loop.create_task(one(i, start + i / rate)))
            i += 1
        result.sent = i
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    result.duration_s = max(duration, time.perf_counter() - start)
    while not pool.empty():
        pool.get_nowait().writer.close()
    return result


async def one_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes, float]:
    """A single request on a fresh connection: (status, body, milliseconds)."""
    pool = await _open(host, port, 1)
    conn = pool.get_nowait()
    started = time.perf_counter()
    status, data = await conn.exchange(request_bytes(host, port, path, body, headers or {}))
    elapsed = (time.perf_counter() - started) * 1000
    conn.writer.close()
    return status, data, elapsed


def install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio works, with more CPU per request
        pass
