"""`stockpred-stream replay`: a source's bars XADDed to the bus as they come (paced by the source), with progress."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable

from stockpred_core.settings import load_settings
from stream.bus import BarBus
from stream.sources import AlphaVantageReplay, BarSource, LeanReplay, SimulatedReplay


def source_from(args: argparse.Namespace) -> BarSource:
    """The source the replay options name: --lean ROOT, --alphavantage FILE..., or --simulated."""
    speed = args.speed or None
    if args.lean:
        if not args.date or not args.tickers:
            raise ValueError("--lean needs --date and --tickers")
        return LeanReplay(args.lean, args.date, args.tickers.split(","), resolution=args.resolution, speed=speed)
    if args.alphavantage:
        return AlphaVantageReplay(args.alphavantage, speed=speed)
    if args.simulated:
        if not args.date:
            raise ValueError("--simulated needs --date")
        interval = 1 if args.resolution == "second" else 60
        seed = load_settings().simulated_seed
        return SimulatedReplay(seed, args.universe, args.date, interval_s=interval, speed=speed)
    raise ValueError("name a source: --lean ROOT, --alphavantage FILE ... or --simulated")


async def replay(source: BarSource, bus: BarBus, report: Callable[[dict], None] | None = None, every: int = 10_000):
    """XADD each batch the source releases; `report` gets progress every `every` bars and the totals at the end."""
    started, sent, last_report = time.monotonic(), 0, 0
    session = None
    async for batch in source:
        sent += await asyncio.to_thread(bus.publish, batch)
        session = max(bar.end_ms for bar in batch)
        if report and sent - last_report >= every:
            last_report = sent
            report(_progress(sent, started, session))
    totals = _progress(sent, started, session) | {"done": True}
    if report:
        report(totals)
    return totals


def _progress(sent: int, started: float, session_ms: int | None) -> dict:
    elapsed = time.monotonic() - started
    at = None if session_ms is None else dt.datetime.fromtimestamp(session_ms / 1000, dt.UTC).isoformat()
    return {
        "bars": sent,
        "seconds": round(elapsed, 2),
        "bars_per_s": round(sent / elapsed) if elapsed else None,
        "session_time": at,
    }


def print_progress(line: dict) -> None:
    print(json.dumps(line), flush=True)
