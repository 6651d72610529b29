"""The bus against a real redis-server: sharding, XADD/XREADGROUP/XACK round trip, the length cap, and a restarted
consumer claiming a crashed one's pending entries in order."""

from __future__ import annotations

from collections import Counter

from stream.bars import Bar
from stream.bus import BarBus, GroupReader, shard_of

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def bars_for(tickers: list[str], n: int, t0: int = T0) -> list[Bar]:
    return [
        Bar(ticker, t0 + k * 1000, 1, 10.0 + k, 11.0 + k, 9.0 + k, 10.5 + k, 100.0 + i)
        for k in range(n)
        for i, ticker in enumerate(tickers)
    ]


def test_a_ticker_has_one_stable_shard_and_tickers_spread_over_all():
    assert [shard_of(t, 4) for t in ("AAPL", "SPY", "IBM", "BAC")] == [
        0,
        3,
        3,
        2,
    ]  # crc32, pinned: a change reshuffles shards
    spread = Counter(shard_of(f"T{i:05d}", 4) for i in range(1000))
    assert sorted(spread) == [0, 1, 2, 3] and min(spread.values()) > 200


def test_published_bars_are_read_per_shard_in_order_and_acknowledged(client, prefix):
    bus = BarBus(client, 3, prefix=prefix)
    tickers = [f"T{i:03d}" for i in range(50)]
    published = bars_for(tickers, 50)
    assert bus.publish(published, batch=700) == 2500
    assert sum(client.xlen(bus.stream(s)) for s in range(3)) == 2500
    reader = GroupReader(bus, [0, 1, 2], "c1", count=400, block_ms=10)
    assert reader.recover() == 0
    read: list[Bar] = []
    while batch := reader.read():
        assert len(batch) <= 3 * 400
        for entry in batch:
            assert entry.stream == bus.stream_of(entry.fields[b"ticker"].decode())
        read += [Bar.from_fields(entry.fields) for entry in batch]
        assert bus.pending_count() == len(batch)  # delivered, not yet acknowledged
        reader.ack(batch)
        assert bus.pending_count() == 0
    assert Counter(read) == Counter(published)
    for ticker in tickers:  # one ticker's bars come back in the order they were published
        assert [b for b in read if b.ticker == ticker] == [b for b in published if b.ticker == ticker]
    assert reader.read() == []


def test_streams_are_capped(client, prefix):
    bus = BarBus(client, 1, prefix=prefix, maxlen=200)
    bus.publish(bars_for(["CAP"], 5000))
    assert 200 <= client.xlen(bus.stream(0)) < 1000  # MAXLEN ~: trimmed by whole nodes, never below the cap


def test_a_restarted_consumer_claims_pending_entries_and_reads_them_first_in_order(client, prefix):
    bus = BarBus(client, 1, prefix=prefix)
    bus.publish(bars_for(["AAA", "BBB"], 30))
    crashed = GroupReader(bus, [0], "crashed", count=25, block_ms=10)
    crashed.recover()
    first, second = crashed.read(), crashed.read()  # read twice, acknowledged never: the process died
    assert len(first) == len(second) == 25 and bus.pending_count() == 50

    successor = GroupReader(bus, [0], "successor", count=20, block_ms=10)
    assert successor.recover() == 50
    assert [c["name"] for c in client.xinfo_consumers(bus.stream(0), bus.group)] == [b"successor"]
    ids = []
    while batch := successor.read():
        ids += [entry.id for entry in batch]
        successor.ack(batch)
    claimed = [entry.id for entry in first + second]
    assert ids[:50] == claimed and len(ids) == 60  # the claimed entries first, in stream order, then the rest
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split(b"-"))))
    assert bus.pending_count() == 0
