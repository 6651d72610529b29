"""`stockpred-stream worker`: P worker processes over N shard streams, stopped cleanly by SIGTERM/SIGINT.
`stockpred-stream replay`: a recorded or simulated session XADDed to the same streams, paced at any speed.
`stockpred-stream persist`: a session's bars from the intraday store into the lake."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import math
import multiprocessing
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from stockpred_core.io.lake import Lake
from stockpred_core.settings import load_settings
from stream.bus import DEFAULT_MAXLEN, GROUP, PREFIX, BarBus, GroupReader
from stream.persist import persist_session
from stream.replay import print_progress, replay, source_from
from stream.worker import INTRADAY_PREFIX, IntradayStore, Worker

logger = logging.getLogger("stockpred.stream")


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process needs (picklable: processes are spawned)."""

    redis_url: str
    shards: int
    owned: tuple[int, ...]
    consumer: str
    count: int
    block_ms: int
    maxlen: int
    prefix: str
    group: str
    store_prefix: str
    metrics_port: int | None
    log_level: str
    predict: bool = False
    alert_rules: str | None = None
    explain: bool = False


def spread(shards: int, processes: int) -> list[tuple[int, ...]]:
    """Shard ids per process: process i owns shards i, i + P, i + 2P ... (each shard exactly one owner)."""
    return [tuple(range(i, shards, processes)) for i in range(processes)]


def run_worker(spec: WorkerSpec) -> None:
    """One worker process: until SIGTERM/SIGINT, then after the current batch print its counters as a JSON line."""
    logging.basicConfig(level=spec.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    client = redis.Redis.from_url(spec.redis_url)
    bus = BarBus(client, spec.shards, prefix=spec.prefix, group=spec.group, maxlen=spec.maxlen)
    store = IntradayStore(client, prefix=spec.store_prefix)
    worker = Worker(
        GroupReader(bus, spec.owned, spec.consumer, count=spec.count, block_ms=spec.block_ms),
        prediction_handler(client, store, spec.alert_rules, spec.explain) if spec.predict else store,
    )
    if spec.metrics_port is not None:
        from prometheus_client import start_http_server

        from stream.metrics import worker_registry

        start_http_server(spec.metrics_port, addr="0.0.0.0", registry=worker_registry(worker.counters, spec.consumer))
    logger.info("worker %s reading shards %s", spec.consumer, ",".join(map(str, spec.owned)))
    worker.run(lambda: bool(stopping))
    counters = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in worker.counters().items()}
    line = json.dumps({"event": "worker_stopped", "consumer": spec.consumer, **counters}) + "\n"
    sys.stdout.write(line)  # one write (< PIPE_BUF): the processes' lines do not interleave on a shared pipe
    sys.stdout.flush()


def prediction_handler(client: redis.Redis, store: IntradayStore, alert_rules: str | None, explain: bool = False):
    """The store, then features, the champion's predictions and alerts (`stream.predictions`), configured by the
    settings: the lake (warm start), the registry (champion), the cache TTL."""
    from stockpred_core.alerts import Alerts
    from stockpred_core.features.alpha import FAMILY as LIBRARY
    from stream.champion import Champion
    from stream.history import LakeHistory
    from stream.predictions import PredictionHandler

    settings = load_settings()
    return PredictionHandler(
        client,
        store,
        LakeHistory(Lake(settings.lake_url), settings),
        Champion(
            settings.mlflow_tracking_uri,
            settings.registered_model,
            poll_s=settings.service.model_poll_seconds,
            device=settings.service.model_device,
        ),
        alerts=Alerts.configured(client, alert_rules),
        cache_ttl_s=settings.service.cache_ttl_seconds,
        explain=explain,
        library=LIBRARY in settings.feature_families,
    )


def serve(specs: Sequence[WorkerSpec]) -> int:
    """Start the worker processes and wait; SIGTERM/SIGINT are passed on to them. 1 when one died on its own."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_worker, args=(spec,), name=spec.consumer) for spec in specs]
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                process.terminate()  # SIGTERM: the worker finishes its batch, then exits

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    for process in processes:
        process.start()
    failed = False
    while any(process.is_alive() for process in processes):
        for process in processes:
            process.join(timeout=0.2)
            if process.exitcode not in (None, 0) and not stopping and not failed:
                logger.error("worker %s exited with %s: stopping the others", process.name, process.exitcode)
                failed = True
                stop(signal.SIGTERM, None)
    return 1 if failed or (any(process.exitcode != 0 for process in processes) and not stopping) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stockpred-stream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="consume bars into the intraday store")
    worker.add_argument("--redis-url", help="default: STOCKPRED_REDIS_URL")
    worker.add_argument("--shards", type=int, default=4, help="shard streams (the same number the sources use)")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--consumer-prefix", default=socket.gethostname(), help="consumer names: <prefix>-<i>")
    worker.add_argument("--count", type=int, default=1000, help="entries per stream per read")
    worker.add_argument("--block-ms", type=int, default=500)
    worker.add_argument("--maxlen", type=int, default=DEFAULT_MAXLEN, help="approximate cap of each shard stream")
    worker.add_argument("--prefix", default=PREFIX, help="stream key prefix")
    worker.add_argument("--group", default=GROUP)
    worker.add_argument("--store-prefix", default=INTRADAY_PREFIX, help="key prefix of the intraday store")
    worker.add_argument("--metrics-port", type=int, help="process i serves Prometheus metrics on this port + i")
    worker.add_argument("--log-level", default="INFO")
    worker.add_argument(
        "--predict",
        action="store_true",
        help="also refresh features and the champion's predictions, push them and alert (one process: the "
        "cross-sectional features need the whole universe)",
    )
    worker.add_argument("--alert-rules", help="subscriptions file (YAML) for --predict; Redis holds more")
    worker.add_argument(
        "--explain",
        action="store_true",
        help="with --predict, also compute each answer's feature contributions (LightGBM: ~50x a prediction; "
        "without, the service computes them when a request asks)",
    )
    source = commands.add_parser("replay", help="XADD a recorded or simulated session's bars")
    source.add_argument("--redis-url", help="default: STOCKPRED_REDIS_URL")
    source.add_argument("--shards", type=int, default=4, help="shard streams (the same number the workers use)")
    source.add_argument("--prefix", default=PREFIX, help="stream key prefix")
    source.add_argument("--maxlen", type=int, default=DEFAULT_MAXLEN, help="approximate cap of each shard stream")
    source.add_argument("--lean", help="the Lean data folder (holding minute/ and second/)")
    source.add_argument("--alphavantage", nargs="+", help="TIME_SERIES_INTRADAY responses (JSON files)")
    source.add_argument("--simulated", action="store_true", help="the simulated market's intraday bars")
    source.add_argument("--date", help="the session, YYYY-MM-DD (--lean, --simulated)")
    source.add_argument("--tickers", help="comma-separated (--lean)")
    source.add_argument("--universe", type=int, default=50, help="simulated tickers (--simulated)")
    source.add_argument("--resolution", choices=("minute", "second"), default="minute")
    source.add_argument("--speed", type=float, default=0, help="1: real time, N: N times faster, 0: unpaced")
    persist = commands.add_parser("persist", help="write a session's intraday bars to the lake")
    persist.add_argument("--redis-url", help="default: STOCKPRED_REDIS_URL")
    persist.add_argument("--date", required=True, type=dt.date.fromisoformat, help="the session, YYYY-MM-DD")
    persist.add_argument("--store-prefix", default=INTRADAY_PREFIX, help="key prefix of the intraday store")
    args = parser.parse_args(argv)
    if args.command == "replay":
        return run_replay(parser, args)
    if args.command == "persist":
        return run_persist(parser, args)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redis_url = args.redis_url or load_settings().redis_url
    if not redis_url:
        parser.error("--redis-url or STOCKPRED_REDIS_URL is required")
    if not 1 <= args.processes <= args.shards:
        parser.error(f"--processes must be between 1 and --shards ({args.shards}), got {args.processes}")
    if args.predict and args.processes != 1:
        parser.error("--predict runs in one process (ranks and z-scores need every ticker's features)")
    if (args.alert_rules or args.explain) and not args.predict:
        parser.error("--alert-rules and --explain need --predict")
    specs = [
        WorkerSpec(
            redis_url,
            args.shards,
            owned,
            f"{args.consumer_prefix}-{i}",
            args.count,
            args.block_ms,
            args.maxlen,
            args.prefix,
            args.group,
            args.store_prefix,
            None if args.metrics_port is None else args.metrics_port + i,
            args.log_level,
            args.predict,
            args.alert_rules,
            args.explain,
        )
        for i, owned in enumerate(spread(args.shards, args.processes))
    ]
    return serve(specs)


def run_persist(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    settings = load_settings()  # the lake: STOCKPRED_LAKE_URL (or the local data directory)
    redis_url = args.redis_url or settings.redis_url
    if not redis_url:
        parser.error("--redis-url or STOCKPRED_REDIS_URL is required")
    written = persist_session(redis.Redis.from_url(redis_url), Lake(settings.lake_url), args.date, args.store_prefix)
    print(json.dumps(written), flush=True)
    return 0


def run_replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    redis_url = args.redis_url or load_settings().redis_url
    if not redis_url:
        parser.error("--redis-url or STOCKPRED_REDIS_URL is required")
    try:
        source = source_from(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    bus = BarBus(redis.Redis.from_url(redis_url), args.shards, prefix=args.prefix, maxlen=args.maxlen)
    asyncio.run(replay(source, bus, print_progress))
    return 0


if __name__ == "__main__":
    sys.exit(main())
