"""Throughput of the bus and the worker with the intraday-store handler, on a private redis-server.

    .venv/bin/python benchmarks/stream_bus.py [--tickers 1000] [--bars-per-ticker 100] [--shards 1] [--count 1000]

Prints bars/s for: pipelined XADD alone; the worker draining a filled stream (XREADGROUP COUNT --count per shard,
parse, the store's atomic apply script, XACK); publisher and worker running at once in two processes (end to end,
until the last bar is applied); and, for the choice of client, a bare read+ack loop with redis-py's sync and asyncio
clients. The load average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bento.harness.redis_server import start_redis  # noqa: E402
from stream.bars import Bar  # noqa: E402
from stream.bus import BarBus, GroupReader  # noqa: E402
from stream.worker import IntradayStore, Worker  # noqa: E402

T0 = 1_700_000_000_000


def make_bars(tickers: int, per_ticker: int, t0: int = T0) -> list[Bar]:
    names = [f"T{i:05d}" for i in range(tickers)]
    return [
        Bar(name, t0 + k * 1000, 1, 100.0, 100.5 + k % 3, 99.5, 100.0 + (k % 5) / 10, 1000.0 + k)
        for k in range(per_ticker)
        for name in names
    ]


def drain(worker: Worker, total: int) -> None:
    while worker.counters()["entries"] < total:
        worker.step()


def publish_process(url: str, shards: int, tickers: int, per_ticker: int, ready, go) -> None:
    bars, bus = make_bars(tickers, per_ticker), BarBus(redis.Redis.from_url(url), shards)
    ready.set()
    go.wait()
    bus.publish(bars)


def bare_sync(url: str, stream: str, count: int, total: int) -> float:
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, "sync", id="0")
    start, n = time.perf_counter(), 0
    while n < total:
        for name, items in client.xreadgroup("sync", "c", {stream: ">"}, count=count):
            client.xack(name, "sync", *(i for i, _ in items))
            n += len(items)
    return n / (time.perf_counter() - start)


async def bare_async(url: str, stream: str, count: int, total: int) -> float:
    client = redis.asyncio.Redis.from_url(url)
    await client.xgroup_create(stream, "async", id="0")
    start, n = time.perf_counter(), 0
    while n < total:
        for name, items in await client.xreadgroup("async", "c", {stream: ">"}, count=count):
            await client.xack(name, "async", *(i for i, _ in items))
            n += len(items)
    await client.aclose()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=1000)
    parser.add_argument("--bars-per-ticker", type=int, default=100)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--count", type=int, default=1000, help="XREADGROUP COUNT (per shard stream)")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    bars = make_bars(args.tickers, args.bars_per_ticker)
    total = len(bars)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(Path(tmp))
        try:
            client = redis.Redis.from_url(url)
            bus = BarBus(client, args.shards)
            start = time.perf_counter()
            bus.publish(bars, batch=1000)
            print(f"publish (pipelined XADD, 1,000 a round trip): {total / (time.perf_counter() - start):,.0f} bars/s")

            worker = Worker(GroupReader(bus, range(args.shards), "bench", count=args.count), IntradayStore(client))
            start = time.perf_counter()
            drain(worker, total)
            elapsed = time.perf_counter() - start
            assert worker.counters()["applied"] == total, worker.counters()
            print(f"worker + intraday store, stream filled: {total / elapsed:,.0f} bars/s ({args.tickers:,} tickers)")

            client.flushall()
            worker = Worker(GroupReader(BarBus(client, args.shards), range(args.shards), "e2e"), IntradayStore(client))
            worker.reader.recover()
            context = multiprocessing.get_context("spawn")
            ready, go = context.Event(), context.Event()
            publisher = context.Process(
                target=publish_process, args=(url, args.shards, args.tickers, args.bars_per_ticker, ready, go)
            )
            publisher.start()
            ready.wait()  # the publisher has started and built its bars: time the bars only
            start = time.perf_counter()
            go.set()
            drain(worker, total)
            elapsed = time.perf_counter() - start
            publisher.join()
            print(f"publisher and worker at once (2 processes), end to end: {total / elapsed:,.0f} bars/s")

            client.flushall()
            BarBus(client, 1, prefix="bare").publish(bars)
            print(f"bare XREADGROUP+XACK, sync client: {bare_sync(url, 'bare:0', args.count, total):,.0f} entries/s")
            rate = asyncio.run(bare_async(url, "bare:0", args.count, total))
            print(f"bare XREADGROUP+XACK, asyncio client: {rate:,.0f} entries/s")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
