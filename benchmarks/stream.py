"""The whole intraday path, measured: XADD -> worker (store, features, the champion, writes) -> push -> a client.

    .venv/bin/python benchmarks/stream.py [--tickers 1000 10000] [--drain-seconds 60] [--latency-seconds 20] [--library]

Per universe size N, on a private redis-server, a lake of simulated validated bars (the features asset's window
before the session), a LightGBM champion in a real MLflow registry, the service (`bentoml serve`, push relay) and
`stockpred-stream worker --predict`, with simulated 1-second bars of the session (each second: one bar per ticker):

- throughput: the worker is paused (SIGSTOP) while --drain-seconds seconds of bars are XADDed, then resumed; bars/s
  from the resume to the last event of the drained stream (every bar applied, every moved ticker's features,
  prediction, cache entry and push event written). Beside it, the reference measured the same way in the same run:
  the store-only worker (`stockpred-stream worker`, no --predict) on the same bars;
- latency: one bar per ticker per second, paced, for --latency-seconds, with 10 SSE clients following every ticker
  and then 100 each following its own 10 tickers: from the XADD of a second's bars to a client receiving the
  refreshed prediction of a bar of that second (p50/p99);
- CPU (share of one core) and peak memory (RSS) of the worker process during each phase;
- the batch implementation side by side: one refresh of all N tickers' session rows by `compute_features` on the
  window plus the running bars, against `IntradayFeatures.update` for the same N tickers.

Clients, publisher, service, worker and Redis share the machine's cores: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import pandas as pd
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bento.harness.process import serve  # noqa: E402
from bento.harness.redis_server import start_redis  # noqa: E402
from bento.harness.sse import sse_events  # noqa: E402
from bento.harness.world import fit, register  # noqa: E402
from bento.security import hash_key, new_token  # noqa: E402
from stockpred_core.data import calendar  # noqa: E402
from stockpred_core.data.simulation import simulate_market  # noqa: E402
from stockpred_core.features.batch import LOOKBACK_SESSIONS, compute_features  # noqa: E402
from stockpred_core.features.intraday import IntradayFeatures  # noqa: E402
from stockpred_core.io.lake import Lake  # noqa: E402
from stockpred_core.io.stream_events import EVENTS_KEY  # noqa: E402
from stockpred_core.settings import load_settings  # noqa: E402
from stream.bars import Bar  # noqa: E402
from stream.bus import DEFAULT_MAXLEN, GROUP, BarBus  # noqa: E402
from stream.sources import SimulatedReplay  # noqa: E402

SESSION = dt.date(2025, 6, 27)
SEED, SHARDS = 5, 4
COMMAND = str(Path(sys.executable).parent / "stockpred-stream")


def world(work: Path, n: int, url: str, library: bool) -> tuple[dict[str, str], str, pd.DataFrame, pd.DataFrame]:
    """The lake's history before SESSION, the champion, a reader key (rate limit above the clients' connections),
    the environment; (env, key, history, the session's daily bars)."""
    token = new_token()
    entry = {"id": "bench", "role": "reader", "sha256": hash_key(token), "rate_per_second": 10_000, "burst": 10_000}
    (work / "api_keys.json").write_text(json.dumps([entry]))
    env = {
        "STOCKPRED_API_KEYS_FILE": str(work / "api_keys.json"),
        "STOCKPRED_ENV": "local",
        "STOCKPRED_DATA_DIR": str(work),
        "STOCKPRED_REDIS_URL": url,
        "STOCKPRED_SERVICE_WORKERS": "1",
        "STOCKPRED_MODEL_POLL_SECONDS": "600",
        # --library: the deployment's recipe names the Alpha158-like library, so the worker computes its columns
        "STOCKPRED_FEATURE_FAMILIES": "technical,alpha158" if library else "technical",
    }
    settings = load_settings(env)
    start = calendar.lookback_start(pd.Timestamp(SESSION), LOOKBACK_SESSIONS + 5)
    bars, events = simulate_market(SEED, n, start, SESSION)
    history = bars[bars["date"] < pd.Timestamp(SESSION)]
    lake = Lake(settings.lake_url)
    days = sorted(history["date"].unique())
    lake.write_partitions("validated", "bars", history, days)
    lake.write_partitions("validated", "events", events.iloc[0:0], days)
    register(settings, fit("lightgbm", rounds=60))
    return env, token, history, bars[bars["date"] == pd.Timestamp(SESSION)]


def seconds_of(n: int, daily: pd.DataFrame, count: int) -> list[list[Bar]]:
    """The first `count` seconds of the session's 1-second bars: one list of n bars per second."""
    return list(itertools.islice(SimulatedReplay(SEED, n, SESSION, interval_s=1, daily=daily).groups(), count))


class Worker:
    """`stockpred-stream worker` in its own process group; `process` is the worker process itself (the command
    starts it as a child), for CPU, memory and SIGSTOP/SIGCONT."""

    def __init__(self, env: dict[str, str], url: str, predict: bool, log: Path) -> None:
        argv = [COMMAND, "worker", "--redis-url", url, "--shards", str(SHARDS), "--block-ms", "5"]
        argv += ["--log-level", "WARNING", *(["--predict"] if predict else [])]
        with open(log, "w") as out:
            self.command = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        parent = psutil.Process(self.command.pid)
        deadline = time.monotonic() + 60
        while not (workers := _spawned(parent)) and time.monotonic() < deadline:
            time.sleep(0.05)  # the spawned worker process appears (beside multiprocessing's resource tracker)
        [self.process] = workers

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        os.killpg(self.command.pid, signal.SIGTERM)
        self.command.wait(timeout=60)


def _spawned(parent: psutil.Process) -> list[psutil.Process]:
    return [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]


class Usage:
    """CPU (share of one core) and peak RSS of a process over a phase."""

    def __init__(self, process: psutil.Process) -> None:
        self.process, self.peak, self.stop = process, 0, threading.Event()
        self.cpu0, self.t0 = sum(process.cpu_times()[:2]), time.monotonic()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.stop.wait(0.1)

    def done(self) -> str:
        self.stop.set()
        self.thread.join()
        cpu = (sum(self.process.cpu_times()[:2]) - self.cpu0) / (time.monotonic() - self.t0)
        return f"worker CPU {100 * cpu:.0f}% of a core, peak RSS {self.peak / 2**20:.0f} MiB"


def drained(client: redis.Redis) -> bool:
    """Every shard's entries read and acknowledged."""
    for shard in range(SHARDS):
        stream = f"stockpred:bars:{shard}"
        if not client.exists(stream):
            continue
        groups = [g for g in client.xinfo_groups(stream) if g["name"].decode() == GROUP]
        if not groups or groups[0]["pending"] or groups[0].get("lag", 1):
            return False  # no worker has read it yet, or entries are left
    return True


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def last_event_ms(client: redis.Redis, key: str = EVENTS_KEY) -> int:
    reply = client.xrevrange(key, count=1)
    return int(reply[0][0].split(b"-")[0]) if reply else 0


def throughput(
    client: redis.Redis, bus: BarBus, worker: Worker, seconds: list[list[Bar]], predict: bool
) -> tuple[str, float]:
    """Pause the warm worker, fill the streams with `seconds`, resume it, time the drain."""
    worker.pause()
    bars = [bar for group in seconds for bar in group]
    bus.publish(bars)
    usage = Usage(worker.process)
    began = time.time()
    worker.resume()
    wait(lambda: drained(client), 600, "the worker did not drain the streams")
    if predict:  # the drain ends with the last batch's transaction, its event the last one
        ended = last_event_ms(client) / 1000
    else:
        ended = time.time()
    rate = len(bars) / (ended - began)
    return f"{len(bars):,} bars in {ended - began:.2f} s: {rate:,.0f} bars/s; {usage.done()}", rate


class Client:
    """An SSE client of GET /events: for every refreshed prediction it receives, (its bar's end in ms, the receipt
    time, the time the worker XADDed the event: the entry id's); latencies are computed after the run."""

    def __init__(self, tickers: list[str] | None, token: str) -> None:
        self.tickers, self.token = tickers, token
        self.received: list[tuple[int, float, float]] = []
        self.live = asyncio.Event()
        self._ends: dict[str, int] = {}  # feature_time -> bar end (ms): every answer of a second shares it

    def _end(self, feature_time: str) -> int:
        end = self._ends.get(feature_time)
        if end is None:
            end = self._ends[feature_time] = int(pd.Timestamp(feature_time).value // 1_000_000)
        return end

    async def run(self, http: httpx.AsyncClient, base: str) -> None:
        params = {"tickers": ",".join(self.tickers)} if self.tickers else {}
        headers = {"X-API-Key": self.token}
        async with http.stream("GET", f"{base}/events", params=params, headers=headers) as response:
            response.raise_for_status()
            async for event, entry, data, now in sse_events(response):
                if event == "subscribed":
                    self.live.set()
                elif event == "predictions":
                    pushed = int(entry.split("-")[0]) / 1000
                    ends = {self._end(a["feature_time"]) for a in orjson.loads(data)["predictions"]}
                    self.received += [(end, now, pushed) for end in ends]


def publish_paced(url: str, seconds: list[list[tuple[str, dict[str, str]]]], ends: list[int], out) -> None:
    """In a process of its own: one second's entries (pre-encoded: stream, fields) per second; each second's
    XADD start time, by its bars' end (ms), sent back through `out`."""
    client, sent_at = redis.Redis.from_url(url), {}
    start = time.perf_counter()
    for k, entries in enumerate(seconds):
        pause = start + k - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # pacing of the publisher, not a wait for a result
        sent_at[ends[k]] = time.time()
        pipe = client.pipeline(transaction=False)
        for stream, fields in entries:
            pipe.xadd(stream, fields, maxlen=DEFAULT_MAXLEN, approximate=True)
        pipe.execute()
    out.put(sent_at)


async def latency(
    base: str, token: str, bus: BarBus, seconds: list[list[Bar]], universe: list[str], n_clients: int
) -> str:
    rng = random.Random(n_clients)
    lists = [None] * n_clients if n_clients <= 10 else [sorted(rng.sample(universe, 10)) for _ in range(n_clients)]
    clients = [Client(tickers, token) for tickers in lists]
    encoded = [[(bus.stream_of(b.ticker), b.to_fields()) for b in group] for group in seconds]
    ends = [group[0].end_ms for group in seconds]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    publisher = context.Process(target=publish_paced, args=(_url(bus.client), encoded, ends, out))
    limits = httpx.Limits(max_connections=n_clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30, read=None)) as http:
        tasks = [asyncio.create_task(c.run(http, base)) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.live.wait() for c in clients)), 60)
        publisher.start()
        sent_at = await asyncio.to_thread(out.get)
        await asyncio.to_thread(publisher.join)
        await asyncio.sleep(2.0)  # the last second's events
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    found = [(now - sent_at[end], pushed - sent_at[end], now - pushed) for c in clients for end, now, pushed in
             c.received if end in sent_at]  # fmt: skip
    if not found:
        return "no events received"
    total, worker, push = (sorted(x[k] for x in found) for k in range(3))
    who = "every ticker" if n_clients <= 10 else "its own 10 tickers"
    return (
        f"{n_clients:3d} clients ({who}): {len(found):,} (client, second) refreshes received, XADD -> client "
        f"p50 {_ms(total, 0.5)}, p99 {_ms(total, 0.99)} (XADD -> worker's event p50 {_ms(worker, 0.5)}, "
        f"p99 {_ms(worker, 0.99)}; event -> client p50 {_ms(push, 0.5)}, p99 {_ms(push, 0.99)})"
    )


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * values[int(q * (len(values) - 1))]:.1f} ms"


def batch_reference(history: pd.DataFrame, seconds: list[list[Bar]]) -> str:
    """One refresh of every ticker's session row: the batch (compute_features on the window plus the running bars)
    against the incremental update, on the same bars."""
    bars = [bar for group in seconds for bar in group]
    frame = pd.DataFrame([(b.ticker, b.open, b.high, b.low, b.close, b.volume) for b in bars],
                         columns=["ticker", "open", "high", "low", "close", "volume"])  # fmt: skip
    day = frame.groupby("ticker", sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"),
    ).reset_index()  # fmt: skip
    day["adj_close"], day["date"] = day["close"], pd.Timestamp(SESSION)
    window = history[day.columns.tolist()]
    began = time.perf_counter()
    compute_features(pd.concat([window, day], ignore_index=True), since=pd.Timestamp(SESSION))  # the day's rows
    batch = time.perf_counter() - began
    features = IntradayFeatures.from_history(history)
    features.start_session(SESSION)
    arrays = [day[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    timings = {}
    for library in (True, False):  # the library's columns: computed while configured or the champion takes them
        features.set_library(library)
        began = time.perf_counter()
        repeats = 5
        for _ in range(repeats):
            features.update(day["ticker"].tolist(), *arrays)
        timings[library] = (time.perf_counter() - began) / repeats
    return (
        f"one refresh of {len(day):,} tickers' session rows: batch compute_features {1000 * batch:.0f} ms, "
        f"IntradayFeatures.update {1000 * timings[True]:.1f} ms ({batch / timings[True]:.0f}x) with the "
        f"Alpha158-like library, {1000 * timings[False]:.1f} ms without it"
    )


def run(n: int, args: argparse.Namespace) -> None:
    print(f"\n== {n:,} tickers ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        work = Path(tmp)
        (work / "redis").mkdir()
        redis_proc, url = start_redis(work / "redis")
        client = redis.Redis.from_url(url)
        try:
            env, token, history, daily = world(work, n, url, args.library)
            total = 1 + args.drain_seconds + args.latency_seconds * len(args.clients)
            seconds = seconds_of(n, daily, total)
            print(batch_reference(history, seconds[: args.drain_seconds]), flush=True)
            drain = seconds[1 : 1 + args.drain_seconds]
            bus = BarBus(client, SHARDS)

            store_only = Worker(env, url, False, work / "store.log")  # the reference, on its own copy of the keys
            bus.publish(seconds[0])
            wait(lambda: drained(client), 120, "the store-only worker did not start")
            reference, reference_rate = throughput(client, bus, store_only, drain, predict=False)
            store_only.stop()
            client.flushdb()

            worker = Worker(env, url, True, work / "worker.log")
            with serve(env, work / "bento.log", ready_path="/livez") as base:
                bus.publish(seconds[0])  # the warm start: the lake's history, the champion, the first second
                wait(lambda: drained(client) and client.xlen(EVENTS_KEY) > 0, 300, "no first refresh")
                ours, rate = throughput(client, bus, worker, drain, predict=True)
                print(f"throughput, whole path: {ours}", flush=True)
                print(f"throughput, store only (reference): {reference}", flush=True)
                print(f"  whole path / store only: {rate / reference_rate:.2f}", flush=True)
                start = 1 + args.drain_seconds
                for k, n_clients in enumerate(args.clients):
                    paced = seconds[start + k * args.latency_seconds : start + (k + 1) * args.latency_seconds]
                    usage = Usage(worker.process)
                    line = asyncio.run(latency(base, token, bus, paced, sorted(daily["ticker"]), n_clients))
                    print(f"latency, 1 bar/s per ticker: {line}; {usage.done()}", flush=True)
            worker.stop()
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--drain-seconds", type=int, default=60, help="seconds of bars drained (throughput)")
    parser.add_argument("--latency-seconds", type=int, default=20, help="paced seconds per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument(
        "--library",
        action="store_true",
        help="the worker computes the Alpha158-like library (STOCKPRED_FEATURE_FAMILIES)",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    for n in args.tickers:
        run(n, args)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
