"""Latency of the push relay (bento.push): from XADD to an SSE client's receipt, through the real service.

    .venv/bin/python benchmarks/push_relay.py [--clients 10 100] [--seconds 20] [--rate 1000] [--batch 100]

Starts a private redis-server and the service (`bentoml serve`, --workers workers), connects N SSE clients to
GET /events, each with its own --client-tickers tickers of a --universe ticker universe, then XADDs predictions
entries of --batch tickers at --rate tickers/s (one entry per batch, the shape of the intraday worker's), each answer
holding the XADD wall time. Prints, per client count, p50/p99/max of (receipt - XADD) over every event a client got,
and checks that every client got exactly the entries of its tickers. Clients and the producer run in this process,
on the same machine as the service: the load average is printed before and after, the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bento.harness.process import serve  # noqa: E402
from bento.harness.redis_server import start_redis  # noqa: E402
from bento.harness.sse import sse_events  # noqa: E402
from bento.harness.world import build_world  # noqa: E402
from stockpred_core.io.stream_events import add_event, prediction_fields  # noqa: E402


class Receiver:
    """One SSE client: the latency of each event it got, and the entry ids."""

    def __init__(self, tickers: list[str]) -> None:
        self.tickers = tickers
        self.latencies: list[float] = []
        self.ids: list[str] = []
        self.live = asyncio.Event()

    async def run(self, http: httpx.AsyncClient, base: str, token: str) -> None:
        url = f"{base}/events?tickers={','.join(self.tickers)}"
        async with http.stream("GET", url, headers={"X-API-Key": token}) as response:
            response.raise_for_status()
            async for event, entry, data, now in sse_events(response):
                if event == "subscribed":
                    self.live.set()
                elif event == "predictions":
                    answers = orjson.loads(data)["predictions"]
                    self.latencies.append(now - min(a["xadd_ts"] for a in answers))
                    self.ids.append(entry)


def produce(url: str, universe: list[str], rate: float, batch: int, seconds: float, sent: list) -> None:
    """XADD entries of `batch` tickers at `rate` tickers/s for `seconds`; (id, tickers) of each in `sent`."""
    client, interval = redis.Redis.from_url(url), batch / rate
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        tickers = [universe[(n * batch + k) % len(universe)] for k in range(batch)]
        now = time.time()
        answers = [orjson.dumps({"ticker": t, "predicted_return": 0.001, "xadd_ts": now}) for t in tickers]
        pipe = client.pipeline(transaction=False)
        add_event(pipe, prediction_fields("2025-06-27T15:00:00+00:00", "1", answers))
        entry_id = pipe.execute()[0].decode()
        sent.append((entry_id, set(tickers)))
        n += 1
        pause = start + n * interval - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # pacing of the producer, not a wait for a result


async def scenario(base: str, token: str, url: str, args, n_clients: int) -> dict:
    rng = random.Random(n_clients)
    universe = [f"U{i:04d}" for i in range(args.universe)]
    receivers = [Receiver(sorted(rng.sample(universe, args.client_tickers))) for _ in range(n_clients)]
    limits = httpx.Limits(max_connections=n_clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30, read=None)) as http:
        tasks = [asyncio.create_task(r.run(http, base, token)) for r in receivers]
        await asyncio.wait_for(asyncio.gather(*(r.live.wait() for r in receivers)), 60)
        sent: list = []
        producer = threading.Thread(target=produce, args=(url, universe, args.rate, args.batch, args.seconds, sent))
        producer.start()
        await asyncio.to_thread(producer.join)
        expected = [[i for i, tickers in sent if tickers & set(r.tickers)] for r in receivers]
        deadline = time.monotonic() + 30
        while any(len(r.ids) < len(e) for r, e in zip(receivers, expected, strict=True)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(x for r in receivers for x in r.latencies)
    exact = sum(r.ids == e for r, e in zip(receivers, expected, strict=True))
    return {
        "clients": n_clients,
        "entries": len(sent),
        "events": len(latencies),
        "clients_exact": exact,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="tickers per second")
    parser.add_argument("--batch", type=int, default=100, help="tickers per XADDed entry")
    parser.add_argument("--universe", type=int, default=1000)
    parser.add_argument("--client-tickers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="push-relay-") as tmp:
        work = Path(tmp)
        (work / "redis").mkdir()
        redis_proc, url = start_redis(work / "redis")
        try:
            world = build_world(
                work / "world", 10, url, extra_env={"STOCKPRED_SERVICE_WORKERS": str(args.workers)}, rounds=10
            )
            with serve(world.env, work / "bento.log") as base:
                for n in args.clients:
                    result = asyncio.run(scenario(base, world.keys["reader"], url, args, n))
                    print(
                        f"{n:4d} clients: {result['entries']} entries XADDed, {result['events']} events received, "
                        f"{result['clients_exact']}/{n} clients got exactly their entries; XADD -> receipt "
                        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms",
                        flush=True,
                    )
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
