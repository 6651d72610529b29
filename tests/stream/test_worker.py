"""The worker and the intraday store against real redis-servers: the duplicate/out-of-order rule, dead letters, a
worker process killed mid-batch (SIGKILL before XACK) and restarted, Redis restarted empty under a running worker."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading

import pytest
import redis
from prometheus_client import generate_latest
from support import ROOT
from support.service import start_redis
from support.waiting import wait_until

from stream.bars import Bar
from stream.bus import BarBus, GroupReader
from stream.metrics import worker_registry
from stream.worker import IntradayStore, Worker, utc_date

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DAY = utc_date(T0)


def bar(ticker: str, k: int, close: float = 10.5) -> Bar:
    return Bar(ticker, T0 + k * 1000, 1, 10.0, 11.0, 9.0, close, 100.0)


def bars_for(tickers: list[str], n: int) -> list[Bar]:
    return [bar(ticker, k, 10.0 + (k % 7) / 10) for k in range(n) for ticker in tickers]


def drain(worker: Worker) -> None:
    while worker.step() or worker.reader.bus.pending_count():
        pass


def test_the_rule_applies_each_ts_once_and_counts_duplicates_and_out_of_order(client, prefix):
    store = IntradayStore(client, prefix=prefix)
    first = [bar("AAA", 1), bar("AAA", 2), bar("BBB", 1)]
    assert store.apply(first) == ["applied"] * 3
    again = [
        bar("AAA", 2),  # the same bar again: duplicate
        bar("AAA", 1),  # an older bar identical to the one applied: duplicate (a redelivery)
        bar("AAA", 1, close=10.0),  # an older ts with other values: out of order
        bar("AAA", 3),
        bar("AAA", 3, close=10.0),  # the ts just applied, other values: out of order
        bar("BBB", 0),  # older than BBB's last, never seen: out of order (late)
        bar("BBB", 2),
    ]
    assert store.apply(again) == [
        "duplicates",
        "duplicates",
        "out_of_order",
        "applied",
        "out_of_order",
        "out_of_order",
        "applied",
    ]
    assert dict(store.counts) == {"applied": 5, "duplicates": 2, "out_of_order": 3}
    assert store.day_bars("AAA", DAY) == [bar("AAA", 1), bar("AAA", 2), bar("AAA", 3)]
    assert store.latest("AAA") == bar("AAA", 3) and store.latest("BBB") == bar("BBB", 2)
    assert store.latest("CCC") is None
    assert 0 < client.ttl(f"{prefix}:bars:AAA:{DAY}") <= 3 * 86400


def test_the_worker_counts_duplicates_and_out_of_order_bars_from_the_stream(client, prefix):
    bus = BarBus(client, 2, prefix=f"{prefix}:bars")
    store = IntradayStore(client, prefix=prefix)
    worker = Worker(GroupReader(bus, [0, 1], "w", block_ms=10), store, clock=lambda: T0 / 1000 + 60)
    bus.publish([bar("AAA", 1), bar("AAA", 2), bar("AAA", 2), bar("XYZ", 5), bar("AAA", 1, close=10.0)])
    drain(worker)
    counters = worker.counters()
    assert {k: counters[k] for k in ("entries", "applied", "duplicates", "out_of_order", "dead_lettered")} == {
        "entries": 5,
        "applied": 3,
        "duplicates": 1,
        "out_of_order": 1,
        "dead_lettered": 0,
    }
    assert counters["lag_seconds"] == pytest.approx(60 - 6)  # now - end of the newest bar (XYZ 5, 1 s long)
    exposed = generate_latest(worker_registry(worker.counters, "w")).decode()
    assert 'stockpred_stream_applied_total{consumer="w"} 3.0' in exposed
    assert 'stockpred_stream_out_of_order_total{consumer="w"} 1.0' in exposed
    assert 'stockpred_stream_lag_seconds{consumer="w"} 54.0' in exposed


def test_a_malformed_entry_is_dead_lettered_with_its_reason_and_the_stream_keeps_flowing(client, prefix):
    bus = BarBus(client, 1, prefix=f"{prefix}:bars")
    store = IntradayStore(client, prefix=prefix)
    worker = Worker(GroupReader(bus, [0], "w", block_ms=10), store)
    bus.publish([bar("AAA", 1)])
    bad_prices = bar("AAA", 2).to_fields() | {"high": "8.0"}
    bad_id = bus.publish_fields("AAA", bad_prices)
    bus.publish_fields("AAA", {"ticker": "AAA", "ts": str(T0 + 3000)})
    bus.publish([bar("AAA", 4), bar("AAA", 5)])
    drain(worker)

    assert store.day_bars("AAA", DAY) == [bar("AAA", 1), bar("AAA", 4), bar("AAA", 5)]
    assert worker.counters()["dead_lettered"] == 2 and bus.pending_count() == 0
    dead = [fields for _, fields in client.xrange(bus.dead_letter)]
    assert [d[b"reason"].decode() for d in dead] == [
        "inconsistent prices: open 10.0, high 8.0, low 9.0, close 10.5",
        "missing field(s) interval_s, open, high, low, close, volume",
    ]
    assert dead[0][b"id"] == bad_id and dead[0][b"stream"].decode() == bus.stream(0)
    assert json.loads(dead[0][b"entry"]) == bad_prices


def test_pending_entries_trimmed_before_they_were_handled_are_counted_as_lost(client, prefix, caplog):
    bus = BarBus(client, 1, prefix=f"{prefix}:bars")
    bus.publish(bars_for(["AAA"], 80))
    crashed = GroupReader(bus, [0], "crashed", count=50, block_ms=10)
    crashed.recover()
    assert len(crashed.read()) == 50  # never acknowledged
    client.xtrim(bus.stream(0), maxlen=10, approximate=False)  # the 50 pending and 20 more are gone
    worker = Worker(GroupReader(bus, [0], "w", block_ms=10), IntradayStore(client, prefix=prefix))
    drain(worker)
    counters = worker.counters()
    assert (counters["trimmed"], counters["applied"], bus.pending_count()) == (50, 10, 0)
    assert any("50 pending entries" in r.getMessage() and "trimmed" in r.getMessage() for r in caplog.records)


CRASHING_WORKER = """
import pathlib, sys, time
import redis
from stream.bus import BarBus, GroupReader
from stream.worker import IntradayStore, Worker

url, prefix, consumer, marker, part = sys.argv[1:]
client = redis.Redis.from_url(url)
store = IntradayStore(client, prefix=prefix)


class ApplyPartThenHang:
    # the real store applies the batch's first `part` bars; the process then hangs before its XACK
    def handle(self, bars):
        store.handle(bars[: int(part)])
        pathlib.Path(marker).write_text(str(len(bars)))
        time.sleep(600)


reader = GroupReader(BarBus(client, 1, prefix=prefix + ":bars"), [0], consumer, count=1000)
Worker(reader, ApplyPartThenHang()).step()
"""


@pytest.mark.parametrize("successor", ["w-0", "w-new"], ids=["same-consumer", "other-consumer"])
def test_a_worker_killed_mid_batch_and_restarted_applies_every_bar_exactly_once(
    client, redis_url, prefix, tmp_path, successor
):
    bus = BarBus(client, 1, prefix=f"{prefix}:bars")
    tickers = [f"T{i}" for i in range(10)]
    published = bars_for(tickers, 250)
    bus.publish(published)
    marker = tmp_path / "applied-part"
    argv = [sys.executable, "-c", CRASHING_WORKER, redis_url, prefix, "w-0", str(marker), "400"]
    child = subprocess.Popen(argv, cwd=ROOT)
    try:
        wait_until(lambda: marker.exists() or child.poll() is not None)
        assert marker.read_text() == "1000"  # it held a batch of 1,000 and applied 400 of them
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    store = IntradayStore(client, prefix=prefix)
    assert sum(len(store.day_bars(t, DAY)) for t in tickers) == 400 and bus.pending_count() == 1000

    worker = Worker(GroupReader(bus, [0], successor, count=1000, block_ms=10), store)
    drain(worker)
    for ticker in tickers:
        assert store.day_bars(ticker, DAY) == [b for b in published if b.ticker == ticker]
        assert store.latest(ticker) == bar(ticker, 249, 10.0 + (249 % 7) / 10)
    counters = worker.counters()
    # the 400 applied before the kill came again and changed nothing; everything else was applied once
    assert (counters["applied"], counters["duplicates"], counters["out_of_order"]) == (2500 - 400, 400, 0)
    assert counters["entries"] == 2500 and bus.pending_count() == 0


def test_redis_restarted_empty_under_a_running_worker_the_group_is_recreated_and_it_goes_on(tmp_path, caplog):
    (tmp_path / "before").mkdir()
    proc, url = start_redis(tmp_path / "before")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = redis.Redis.from_url(url)
    bus = BarBus(client, 2)
    store = IntradayStore(client)
    worker = Worker(GroupReader(bus, [0, 1], "w", block_ms=50), store)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,), kwargs={"max_backoff_s": 0.2})
    caplog.set_level(logging.INFO, logger="stockpred.stream")
    thread.start()
    try:
        tickers = [f"T{i}" for i in range(10)]
        bus.publish(bars_for(tickers, 30))
        wait_until(lambda: store.counts["applied"] == 300)
        proc.terminate()
        proc.wait(timeout=10)
        (tmp_path / "after").mkdir()
        proc, _ = start_redis(tmp_path / "after", port=port)  # the same address, empty
        later = [
            Bar(b.ticker, b.ts + 60_000, 1, b.open, b.high, b.low, b.close, b.volume) for b in bars_for(tickers, 30)
        ]
        bus.publish(later)
        wait_until(lambda: store.counts["applied"] == 600)
    finally:
        stop.set()
        thread.join(timeout=30)
        proc.terminate()
        proc.wait(timeout=10)
    assert not thread.is_alive()
    assert worker.counters()["group_recreated"] == 2  # both shards' groups
    recreated = [r.getMessage() for r in caplog.records if "recreated" in r.getMessage()]
    assert len(recreated) == 2 and all("was gone" in m and "a gap" in m for m in recreated)
    assert worker.counters()["duplicates"] == 0
