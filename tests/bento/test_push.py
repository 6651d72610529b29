"""Push (`bento.push`): GET /events (SSE) and /ws/events (WebSocket) of a real service (`bentoml serve`, 2 workers)
fed by XADDs to the real events stream: live entries filtered per client (one event per entry), resume with
Last-Event-ID without gap or duplicate while entries keep arriving, `resync` for a trimmed id, auth (401, the
`api_key` parameter kept out of the logs), 100 concurrent clients, and the relay itself (overflow, Redis going away
and coming back)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time

import httpx
import orjson
import pytest
import redis
from support.doc_commands import doc_command
from support.service import Server, audit_lines, build_world, free_port, serve, start_redis
from support.waiting import wait_until
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from bento import push
from bento.guard import Guard
from bento.security import KeyStore, hash_key
from stockpred_core.io.stream_events import EVENTS_KEY, alert_fields, prediction_fields
from stockpred_core.settings import load_settings

pytestmark = pytest.mark.slow


def answer(ticker: str, n: int = 0) -> bytes:
    return orjson.dumps({"ticker": ticker, "predicted_return": 0.01, "feature_date": "2025-06-27", "n": n})


def xadd_predictions(client: redis.Redis, tickers: list[str], n: int = 0) -> str:
    fields = prediction_fields("2025-06-27T15:00:00+00:00", "1", [answer(t, n) for t in tickers])
    return client.xadd(EVENTS_KEY, fields).decode()


class Stream:
    """What one client received: the status, the events ({"id", "event", "data"}), comments, how it closed."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.close_code: int | None = None
        self.done = False
        self.task: asyncio.Task | None = None

    def named(self, name: str) -> list[dict]:
        return [e for e in self.events if e["event"] == name]

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events if e.get("id")]

    @property
    def live(self) -> bool:
        return bool(self.named("subscribed"))


class Clients:
    """SSE and WebSocket clients on an event loop of their own thread; the test waits on what they got."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.http = self.call(self._client())

    async def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30, read=None))

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def sse(self, url: str, headers: dict | None = None) -> Stream:
        stream = Stream()

        async def start() -> None:
            stream.task = asyncio.ensure_future(self._sse(stream, url, headers or {}))

        self.call(start())
        return stream

    def ws(self, url: str, headers: dict | None = None) -> Stream:
        stream = Stream()

        async def start() -> None:
            stream.task = asyncio.ensure_future(self._ws(stream, url, headers or {}))

        self.call(start())
        return stream

    def close(self, stream: Stream) -> None:
        async def stop() -> None:
            stream.task.cancel()
            await asyncio.gather(stream.task, return_exceptions=True)

        self.call(stop())

    def shutdown(self) -> None:
        self.call(self.http.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _sse(self, stream: Stream, url: str, headers: dict) -> None:
        try:
            await self._read_sse(stream, url, headers)
        except httpx.HTTPError as exc:  # the server ended the stream abruptly
            stream.body = repr(exc).encode()
        finally:
            stream.done = True

    async def _read_sse(self, stream: Stream, url: str, headers: dict) -> None:
        async with self.http.stream("GET", url, headers=headers) as response:
            stream.status = response.status_code
            if response.status_code != 200:
                stream.body = await response.aread()
                return
            event: dict = {}
            async for line in response.aiter_lines():
                if line == "":
                    if event:
                        stream.events.append({"id": None, **event})
                    event = {}
                elif line.startswith(":"):
                    stream.comments.append(line)
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    event[field] = json.loads(value) if field == "data" else value

    async def _ws(self, stream: Stream, url: str, headers: dict) -> None:
        try:
            async with ws_connect(url, additional_headers=headers) as socket:
                stream.status = 101
                try:
                    async for message in socket:
                        stream.events.append(json.loads(message))
                except ConnectionClosed:
                    pass
                stream.close_code = socket.close_code
        finally:
            stream.done = True


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_url):
    root = tmp_path_factory.mktemp("push")
    world = build_world(
        root / "world", 10, redis_url.rsplit("/", 1)[0] + "/8", extra_env={"STOCKPRED_SERVICE_WORKERS": "2"}
    )
    with serve(world.env, root / "bento.log") as base:
        yield Server(base, world, root / "bento.log")


@pytest.fixture(scope="module")
def events(server) -> redis.Redis:
    return redis.Redis.from_url(server.world.settings.redis_url)


@pytest.fixture(scope="module")
def clients():
    made = Clients()
    yield made
    made.shutdown()


def key(server, role: str = "reader") -> dict:
    return {"X-API-Key": server.world.keys[role]}


def test_sse_client_gets_entries_of_its_tickers_one_event_per_entry(server, events, clients):
    stream = clients.sse(f"{server.base}/events?tickers=live1,LIVE2", key(server))
    wait_until(lambda: stream.live)
    assert stream.named("subscribed")[0]["data"] == {"tickers": ["LIVE1", "LIVE2"], "kinds": ["alert", "predictions"]}
    first = xadd_predictions(events, ["LIVE1", "OTHER", "LIVE3"])
    xadd_predictions(events, ["OTHER"])  # none of its tickers: nothing
    both = xadd_predictions(events, ["LIVE2", "OTHER", "LIVE1"])
    alert = {"subscriber": "reader", "rule": "r", "ticker": "LIVE2", "value": 0.1, "threshold": 0.05, "message": "m"}
    alerted = events.xadd(EVENTS_KEY, alert_fields(alert)).decode()
    wait_until(lambda: alerted in stream.ids())
    got = [e for e in stream.events if e["id"]]
    assert [(e["id"], e["event"]) for e in got] == [
        (first, "predictions"),
        (both, "predictions"),
        (alerted, "alert"),
    ]
    assert [a["ticker"] for a in got[0]["data"]["predictions"]] == ["LIVE1"]
    assert [a["ticker"] for a in got[1]["data"]["predictions"]] == ["LIVE2", "LIVE1"]
    assert got[0]["data"]["model_version"] == "1" and got[2]["data"]["ticker"] == "LIVE2"
    clients.close(stream)

    only_alerts = clients.sse(f"{server.base}/events?tickers=LIVE2&kinds=alert", key(server))
    wait_until(lambda: only_alerts.live)
    xadd_predictions(events, ["LIVE2"])
    again = events.xadd(EVENTS_KEY, alert_fields(alert)).decode()
    wait_until(lambda: again in only_alerts.ids())
    assert only_alerts.ids() == [again]
    clients.close(only_alerts)


def test_a_reader_gets_the_alerts_of_its_own_subscriptions_an_admin_everyones(server, events, clients):
    reader = clients.sse(f"{server.base}/events?kinds=alert", key(server))
    admin = clients.sse(f"{server.base}/events?kinds=alert", key(server, "admin"))
    wait_until(lambda: reader.live and admin.live)
    alert = {"rule": "r", "ticker": "OWN1", "value": 0.1, "threshold": 0.05, "message": "m"}
    theirs = events.xadd(EVENTS_KEY, alert_fields({**alert, "subscriber": "someone-else"})).decode()
    mine = events.xadd(EVENTS_KEY, alert_fields({**alert, "subscriber": "reader"})).decode()
    wait_until(lambda: mine in reader.ids() and mine in admin.ids())
    assert reader.ids() == [mine] and admin.ids() == [theirs, mine]
    clients.close(reader)
    clients.close(admin)


def test_resume_gets_exactly_the_missed_entries_then_live_ones(server, events, clients):
    """Entries keep arriving while the client connects with Last-Event-ID: each id once, in order, none missing."""
    ids: list[str] = []

    def write() -> None:
        for n in range(400):
            ids.append(xadd_predictions(events, ["RES1", "RESX"] if n % 2 else ["RESX"], n))
            time.sleep(0.002)  # pacing: the client connects while entries keep coming

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: len(ids) >= 100)
    resume_from = ids[50]
    stream = clients.sse(f"{server.base}/events?tickers=RES1", {**key(server), "Last-Event-ID": resume_from})
    writer.join()
    expected = [i for n, i in enumerate(ids) if n > 50 and n % 2]
    wait_until(lambda: expected[-1] in stream.ids())
    assert stream.ids() == expected  # the backlog, then live: no gap, no duplicate
    assert stream.live and not stream.named("resync")
    assert all([a["ticker"] for a in e["data"]["predictions"]] == ["RES1"] for e in stream.named("predictions"))
    clients.close(stream)

    by_query = clients.sse(f"{server.base}/events?tickers=RES1&last_event_id={ids[-4]}", key(server))
    wait_until(lambda: by_query.live)
    assert by_query.ids() == [i for n, i in enumerate(ids) if n > len(ids) - 4 and n % 2]
    clients.close(by_query)


def test_a_trimmed_id_gets_resync_then_live_events(server, events, clients):
    old = [xadd_predictions(events, ["TRIM1"]) for _ in range(5)]
    events.xtrim(EVENTS_KEY, minid=old[3], approximate=False)  # old[0] and the two after it are gone
    stream = clients.sse(f"{server.base}/events?tickers=TRIM1", {**key(server), "Last-Event-ID": old[0]})
    wait_until(lambda: stream.live)
    assert [e["event"] for e in stream.events] == ["resync", "subscribed"]
    assert "older than the stream's first entry" in stream.named("resync")[0]["data"]["reason"]
    new = xadd_predictions(events, ["TRIM1"])
    wait_until(lambda: new in stream.ids())
    assert stream.ids() == [new]
    clients.close(stream)

    kept = clients.sse(f"{server.base}/events?tickers=TRIM1", {**key(server), "Last-Event-ID": old[3]})
    wait_until(lambda: kept.live)
    assert kept.ids() == [old[4], new] and not kept.named("resync")  # nothing after old[3] was trimmed
    clients.close(kept)


def test_websocket_gets_the_same(server, events, clients):
    base = server.base.replace("http://", "ws://")
    token = server.world.keys["reader"]
    socket = clients.ws(f"{base}/ws/events?tickers=WS1&api_key={token}")
    wait_until(lambda: socket.live)
    first = xadd_predictions(events, ["WS2", "WS1"])
    xadd_predictions(events, ["WS2"])
    wait_until(lambda: first in socket.ids())
    event = socket.named("predictions")[0]
    assert set(event) == {"id", "event", "data"} and [a["ticker"] for a in event["data"]["predictions"]] == ["WS1"]
    clients.close(socket)

    later = xadd_predictions(events, ["WS1"])
    resumed = clients.ws(f"{base}/ws/events?tickers=WS1&last_event_id={first}", key(server))  # header key too
    wait_until(lambda: resumed.live)
    live = xadd_predictions(events, ["WS1"])
    wait_until(lambda: live in resumed.ids())
    assert resumed.ids() == [later, live]
    clients.close(resumed)

    refused = clients.ws(f"{base}/ws/events")
    wait_until(lambda: refused.done)
    assert refused.close_code == 4401 and "missing API key" in refused.named("error")[0]["data"]
    wrong = clients.ws(f"{base}/ws/events?api_key=spk_nope")
    wait_until(lambda: wrong.done)
    assert wrong.close_code == 4401


def test_auth_on_sse(server, clients):
    missing = httpx.get(f"{server.base}/events", timeout=30)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert "api_key" in missing.json()["error"]
    assert httpx.get(f"{server.base}/events?api_key=spk_nope", timeout=30).status_code == 401
    bad = httpx.get(f"{server.base}/events?tickers=bad ticker!", headers=key(server), timeout=30)
    assert bad.status_code == 400 and "invalid ticker" in bad.json()["error"]
    assert httpx.get(f"{server.base}/events?kinds=trades", headers=key(server), timeout=30).status_code == 400
    bearer = clients.sse(f"{server.base}/events", {"Authorization": f"Bearer {server.world.keys['admin']}"})
    wait_until(lambda: bearer.live)  # admin includes reader
    assert bearer.status == 200
    clients.close(bearer)


def test_a_key_without_the_needed_role_gets_403(monkeypatch):
    """Every role includes reader today (bento.security.ROLES), so the real service has no key to refuse with 403:
    the check is the gateway's, shown here by asking the push routes for admin."""
    guard = Guard(KeyStore.load(None, f"r:reader:{hash_key('spk_r')}"), load_settings({}).service, "local")

    class Service:
        pass

    service = Service()
    service.guard = guard
    monkeypatch.setattr(push, "NEEDED_ROLE", "admin")
    audit = {"route": "/events", "method": "GET"}
    refusal = asyncio.run(push.authorize(service, {}, "spk_r", audit))
    assert refusal[0] == 403 and audit["key_id"] == "r"
    needs = "this API key (role reader) may not call /events: it needs the admin role"
    assert orjson.loads(refusal[1]) == {"error": needs}
    monkeypatch.setattr(push, "NEEDED_ROLE", "reader")
    assert asyncio.run(push.authorize(service, {}, "spk_r", {"route": "/events", "method": "GET"})) is None


def test_the_query_key_never_reaches_the_logs(server, events, clients):
    token = server.world.keys["reader"]
    stream = clients.sse(f"{server.base}/events?tickers=LOG1&api_key={token}")
    socket = clients.ws(f"{server.base.replace('http://', 'ws://')}/ws/events?api_key={token}&tickers=LOG1")
    wait_until(lambda: stream.live and socket.live)
    entry = xadd_predictions(events, ["LOG1"])
    wait_until(lambda: entry in stream.ids() and entry in socket.ids())
    clients.close(stream)
    clients.close(socket)
    httpx.get(f"{server.base}/events?api_key={token}x", timeout=30)  # refused: audited too

    def audited() -> list[dict]:
        return [line for line in audit_lines(server.world) if line["route"] in ("/events", "/ws/events")]

    wait_until(lambda: sum(line.get("events", 0) for line in audited() if line["key_id"] == "reader") >= 2)
    assert {(line["route"], line["status"]) for line in audited()} >= {("/events", 200), ("/ws/events", 101)}
    assert any(line["status"] == 401 for line in audited())
    for text in (server.log.read_text(), (server.world.root / "audit.log").read_text()):
        assert token not in text and "api_key" not in text


def test_documented_curl_streams_events(server, events):
    command = doc_command(r"^timeout \d+ curl -sN .*/events")
    line = command.replace("127.0.0.1:3000", server.base.removeprefix("http://"))
    env = {"PATH": "/usr/bin:/bin", "TOKEN": server.world.keys["reader"]}
    proc = subprocess.Popen(["bash", "-c", line], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        subscribed = [proc.stdout.readline() for _ in range(3)]
        assert subscribed[0] == "event: subscribed\n" and subscribed[2] == "\n", subscribed
        entry = xadd_predictions(events, ["S00042", "S00007", "S00001"])
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # timeout and curl
        proc.wait(timeout=10)
    assert lines[:2] == [f"id: {entry}\n", "event: predictions\n"], lines
    assert [a["ticker"] for a in json.loads(lines[2].removeprefix("data: "))["predictions"]] == ["S00042", "S00001"]


def test_100_concurrent_clients_each_get_their_tickers(server, events, clients):
    names = [f"H{i:03d}" for i in range(100)]
    mine = {i: {names[i], names[(i + 37) % 100]} for i in range(100)}
    streams = [
        clients.sse(f"{server.base}/events?tickers={','.join(sorted(mine[i]))}", key(server)) for i in range(100)
    ]
    wait_until(lambda: all(s.live for s in streams))
    gauge = httpx.get(f"{server.base}/metrics", timeout=30).text
    assert sum(float(x.split()[-1]) for x in gauge.splitlines() if x.startswith("stockpred_push_clients")) >= 100
    entries = {
        xadd_predictions(events, names[k * 25 : (k + 1) * 25]): set(names[k * 25 : (k + 1) * 25]) for k in range(4)
    }
    expected = {
        i: [(entry, mine[i] & tickers) for entry, tickers in entries.items() if mine[i] & tickers] for i in range(100)
    }
    wait_until(lambda: all(s.ids() and s.ids()[-1] == expected[i][-1][0] for i, s in enumerate(streams)), timeout=90)
    for i, stream in enumerate(streams):
        got = [(e["id"], {a["ticker"] for a in e["data"]["predictions"]}) for e in stream.named("predictions")]
        assert got == expected[i], i
    for stream in streams:
        clients.close(stream)
    metrics = httpx.get(f"{server.base}/metrics", timeout=30).text
    assert 'stockpred_push_events_total{transport="sse"}' in metrics


# the relay alone, in process


def test_a_slow_client_overflows_and_is_dropped_alone():
    relay = push.Relay(None)
    slow, fast = push.Client(None, push.KINDS, limit=3), push.Client(None, push.KINDS, limit=100)
    relay.register(slow)
    relay.register(fast)
    fields = prediction_fields("t", "1", [answer("A")])
    raw = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}  # as Redis answers
    for n in range(5):
        relay.dispatch(push.Entry(f"{n + 1}-0".encode(), raw))
    assert slow.overflowed and not slow.pending and slow not in relay.clients
    assert len(fast.pending) == 5 and fast in relay.clients
    assert push.overflow_message(slow).event == "overflow"


def test_relay_says_when_redis_goes_and_comes_back(tmp_path, clients):
    port = free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    proc, url = start_redis(tmp_path / "a", port)
    relay = push.Relay(url, block_ms=200)
    client = push.Client(frozenset({"R1"}), push.KINDS)
    clients.call(relay.start())
    relay.register(client)

    def events() -> list[str]:
        return [m.event for m in client.pending]

    try:
        feed = redis.Redis.from_url(url)
        wait_until(lambda: relay.last_id is not None)
        first = xadd_predictions(feed, ["R1"])
        wait_until(lambda: first in [m.id for m in client.pending])
        proc.terminate()
        proc.wait(timeout=10)
        wait_until(lambda: "feed" in events())
        assert client.pending[-1].data == b'{"status":"interrupted","reason":"Redis unavailable"}'
        proc, url = start_redis(tmp_path / "b", port)  # back, empty
        wait_until(lambda: b'"resumed"' in b"".join(m.data for m in client.pending))
        again = xadd_predictions(redis.Redis.from_url(url), ["R1"])
        wait_until(lambda: again in [m.id for m in client.pending])
        assert client in relay.clients and not client.overflowed
    finally:
        clients.call(relay.stop())
        proc.terminate()
        proc.wait(timeout=10)


def test_service_stops_at_once_with_streams_open(server, tmp_path, clients):
    """Uvicorn waits for open responses before the shutdown hooks: the relay ends the streams on SIGTERM."""
    env = {**server.world.env, "STOCKPRED_SERVICE_WORKERS": "1"}
    with serve(env, tmp_path / "bento.log") as base:
        stream = clients.sse(f"{base}/events", key(server))
        socket = clients.ws(f"{base.replace('http://', 'ws://')}/ws/events", key(server))
        wait_until(lambda: stream.live and socket.live)
        started = time.monotonic()
    assert time.monotonic() - started < 15  # stop_group would SIGKILL after 30 s
    wait_until(lambda: stream.done and socket.done)
    assert socket.close_code == 1001 and stream.status == 200
