"""`stockpred-stream worker` as a real command against a real redis-server: P processes over N shards apply every
bar once, and SIGTERM stops them after the current batch (acknowledged, nothing half-applied or applied twice)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from support.doc_commands import as_argv, doc_options
from support.waiting import wait_until

from stream.bars import Bar
from stream.bus import BarBus
from stream.cli import spread
from stream.worker import IntradayStore, utc_date

T0 = 1_700_000_000_000
COMMAND = shutil.which("stockpred-stream", path=str(Path(sys.executable).parent))  # the venv running the tests


def test_shards_are_spread_over_processes_each_with_one_owner():
    assert spread(4, 2) == [(0, 2), (1, 3)]
    assert spread(5, 3) == [(0, 3), (1, 4), (2,)]


def published(client: redis.Redis, bus: BarBus, tickers: int, per_ticker: int) -> list[Bar]:
    bars = [
        Bar(f"T{i:03d}", T0 + k * 1000, 1, 10.0, 11.0, 9.0, 10.0 + k / 1000, 100.0)
        for k in range(per_ticker)
        for i in range(tickers)
    ]
    bus.publish(bars)
    return bars


def start(redis_url: str, prefix: str, processes: int) -> subprocess.Popen:
    """The command on stream keys `<prefix>:bars:*` and store keys `<prefix>:intraday:*`."""
    if COMMAND is None:
        pytest.fail("stockpred-stream is not installed: pip install -e . (pyproject.toml [project.scripts])")
    # the command docs/operations.md shows, on this test's Redis, process count and keys
    options = doc_options(r"^\.venv/bin/stockpred-stream worker .*--processes")
    assert options["--shards"] == "4"
    argv = [COMMAND, "worker", *as_argv(options | {"--redis-url": redis_url, "--processes": str(processes)})]
    argv += [
        "--prefix",
        f"{prefix}:bars",
        "--store-prefix",
        f"{prefix}:intraday",
        "--consumer-prefix",
        "test",
        "--block-ms",
        "50",
        "--log-level",
        "WARNING",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> list[dict]:
    """SIGTERM, wait for a clean exit, and the workers' final counters."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def applied(client: redis.Redis, prefix: str) -> int:
    """Bars in the store (each (ticker, ts) once)."""
    return sum(client.hlen(key) for key in client.scan_iter(f"{prefix}:intraday:bars:*", count=1000))


def test_two_processes_over_four_shards_apply_every_bar_once(client, redis_url, prefix):
    bus = BarBus(client, 4, prefix=f"{prefix}:bars")
    bars = published(client, bus, tickers=200, per_ticker=50)
    proc = start(redis_url, prefix, processes=2)
    try:
        wait_until(lambda: applied(client, prefix) == len(bars) and bus.pending_count() == 0)
    finally:
        reports = stop(proc) if proc.poll() is None else []
    assert sorted(r["consumer"] for r in reports) == ["test-0", "test-1"]
    assert sum(r["applied"] for r in reports) == 10_000 and sum(r["duplicates"] for r in reports) == 0
    for shard in range(4):  # one consumer per shard stream: one ticker's bars in order, by one process
        consumers = client.xinfo_consumers(bus.stream(shard), bus.group)
        assert [c["name"] for c in consumers] == [f"test-{shard % 2}".encode()]
    store = IntradayStore(client, prefix=f"{prefix}:intraday")
    for ticker in ("T000", "T123", "T199"):
        assert store.day_bars(ticker, utc_date(T0)) == [b for b in bars if b.ticker == ticker]


def test_sigterm_stops_after_the_current_batch_and_a_restart_finishes_without_duplicates(client, redis_url, prefix):
    bus = BarBus(client, 4, prefix=f"{prefix}:bars")
    bars = published(client, bus, tickers=1000, per_ticker=60)
    proc = start(redis_url, prefix, processes=1)
    wait_until(lambda: applied(client, prefix) > 0, timeout=60)
    first = stop(proc)
    assert bus.pending_count() == 0  # the batch in hand was finished and acknowledged before the exit
    assert 0 < first[0]["applied"] < len(bars) and applied(client, prefix) == first[0]["applied"]

    proc = start(redis_url, prefix, processes=1)
    try:
        wait_until(lambda: applied(client, prefix) == len(bars) and bus.pending_count() == 0)
    finally:
        second = stop(proc) if proc.poll() is None else []
    assert first[0]["applied"] + second[0]["applied"] == len(bars)
    assert first[0]["duplicates"] == second[0]["duplicates"] == 0
