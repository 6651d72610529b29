"""The intraday stream in Dagster: intraday_stream_sensor over a real Redis status hash (observations, persisted
sessions, the freshness check and its alert, secrets kept out), and the reconciliation of the real Lean 2013-10-07
minute bars against the daily bars of that date."""

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis
from support.service import free_port, wait_for_redis

from stockpred_assets.intraday_reconciliation import intraday_reconciliation, session_hours
from stockpred_assets.intraday_stream import (
    CHECK_NAME,
    build_intraday_stream_sensor,
    intraday_bars,
    intraday_stream_fresh,
)
from stockpred_core.io.lake import Lake
from stockpred_core.io.stream_events import ALERT, EVENTS_KEY, STATUS_KEY, parse_event, write_status
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.redis import RedisResource
from stream.sources.lean import LeanReplay

NY = ZoneInfo("America/New_York")
IN_SESSION = dt.datetime(2024, 3, 5, 14, 0, tzinfo=NY)  # a Tuesday afternoon
PASSWORD = "pw-4f1c9e2b7a"


class Clock:
    """The sensor's clock, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def url(redis_url):
    """A database of the session's redis-server of its own, emptied."""
    url = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(url).flushdb()
    return url


def status(now: dt.datetime, *, updated_ago: float = 1.0, bar_ago: float = 30.0, applied: int = 100, **extra) -> dict:
    end_ms = int((now.timestamp() - bar_ago) * 1000)
    return {
        "last_bar_end_ms": end_ms,
        "lag_seconds": 0.25,
        "entries": applied + 2,
        "applied": applied,
        "duplicates": 1,
        "out_of_order": 1,
        "dead_lettered": 0,
        "updated_at": now.timestamp() - updated_ago,
        **extra,
    }


def tick(sensor: dg.SensorDefinition, url: str, cursor: str | None = None):
    """One evaluation: (its result, the cursor it left)."""
    context = dg.build_sensor_context(cursor=cursor, resources={"redis": RedisResource(url=url)})
    result = sensor(context)
    return result, context.cursor


def events_of(result, kind) -> list:
    return [e for e in result.asset_events if isinstance(e, kind)] if isinstance(result, dg.SensorResult) else []


def alerts(client: redis.Redis) -> list[dict]:
    return [data for _, fields in client.xrange(EVENTS_KEY) for kind, _, data in [parse_event(fields)] if kind == ALERT]


def test_an_observation_sums_the_workers_and_comes_again_only_when_bars_move(url):
    clock = Clock(IN_SESSION)
    sensor = build_intraday_stream_sensor(clock=clock)
    client = redis.Redis.from_url(url)
    write_status(client, "worker-0", status(clock.now, bar_ago=20, applied=100))
    write_status(client, "worker-1", status(clock.now, updated_ago=4, bar_ago=50, applied=40))

    result, cursor = tick(sensor, url)
    [observation] = events_of(result, dg.AssetObservation)
    meta = {k: v.value for k, v in observation.metadata.items()}
    assert observation.asset_key == dg.AssetKey("intraday_bars") and observation.partition == "2024-03-05"
    newest_end = dt.datetime.fromtimestamp(int((clock.now.timestamp() - 20) * 1000) / 1000, dt.UTC)
    assert meta["last_bar_end"] == newest_end.isoformat(timespec="seconds")
    assert meta["workers"] == 2 and meta["applied"] == 140 and meta["entries"] == 144
    assert meta["duplicates"] == 2 and meta["out_of_order"] == 2 and meta["dead_lettered"] == 0
    assert meta["lag_seconds"] == 0.25
    assert meta["worker_staleness_seconds"] == {"worker-0": 1.0, "worker-1": 4.0}
    [evaluation] = events_of(result, dg.AssetCheckEvaluation)
    assert evaluation.check_name == CHECK_NAME and evaluation.passed

    clock.now += dt.timedelta(seconds=30)
    again, cursor = tick(sensor, url, cursor)
    assert isinstance(again, dg.SkipReason)  # nothing changed: no duplicate observation, no evaluation
    write_status(
        client, "worker-0", {**status(IN_SESSION, bar_ago=20, applied=100), "updated_at": clock.now.timestamp()}
    )
    heartbeat, cursor = tick(sensor, url, cursor)
    assert isinstance(heartbeat, dg.SkipReason)  # a status refresh without new bars is not news

    write_status(client, "worker-0", status(clock.now, bar_ago=10, applied=160))
    moved, _ = tick(sensor, url, cursor)
    [observation] = events_of(moved, dg.AssetObservation)
    assert observation.metadata["applied"].value == 200


def test_a_persisted_session_is_one_materialization_of_its_partition(url):
    clock = Clock(IN_SESSION.replace(hour=18))
    sensor = build_intraday_stream_sensor(clock=clock)
    client = redis.Redis.from_url(url)
    written = {"date": "2024-03-05", "bars": 1560, "tickers": 4, "path": "/lake/raw/intraday_bars/date=2024-03-05"}
    client.hset(STATUS_KEY, "persisted:2024-03-05", json.dumps(written))

    result, cursor = tick(sensor, url)
    [materialization] = events_of(result, dg.AssetMaterialization)
    assert materialization.asset_key == dg.AssetKey("intraday_bars") and materialization.partition == "2024-03-05"
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert meta["bars"] == 1560 and meta["tickers"] == 4 and meta["path"] == written["path"]
    assert events_of(result, dg.AssetObservation) == []  # no worker reports: nothing to observe

    again, cursor = tick(sensor, url, cursor)
    assert events_of(again, dg.AssetMaterialization) == []
    client.hset(STATUS_KEY, "persisted:2024-03-05", json.dumps({**written, "bars": 1580}))  # persisted again, late bars
    rerun, _ = tick(sensor, url, cursor)
    [materialization] = events_of(rerun, dg.AssetMaterialization)
    assert materialization.metadata["bars"].value == 1580


def test_a_stalled_stream_fails_the_check_and_alerts_once_per_stall(url):
    clock = Clock(IN_SESSION)
    sensor = build_intraday_stream_sensor(clock=clock)
    client = redis.Redis.from_url(url)
    write_status(client, "worker-0", status(clock.now, updated_ago=600, bar_ago=610))

    result, cursor = tick(sensor, url)
    [evaluation] = events_of(result, dg.AssetCheckEvaluation)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["age_seconds"].value == pytest.approx(610)
    [alert] = alerts(client)
    assert alert["rule"] == "stream_stale" and alert["subscriber"] == "ops" and alert["ticker"] == "*"
    assert alert["value"] == pytest.approx(610) and alert["threshold"] == 300 and alert["model_version"] is None
    assert alert["as_of"] == "2024-03-05T19:00:00+00:00" and "610 s" in alert["message"]
    with dg.instance_for_test() as instance:  # what the daemon does with the events: the check turns red
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
        key = dg.AssetCheckKey(dg.AssetKey("intraday_bars"), CHECK_NAME)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert record.status.value == "FAILED"

    clock.now += dt.timedelta(seconds=30)
    still, cursor = tick(sensor, url, cursor)
    assert isinstance(still, dg.SkipReason) and len(alerts(client)) == 1  # the same stall: no second alert

    write_status(client, "worker-0", status(clock.now))
    recovered, cursor = tick(sensor, url, cursor)
    [evaluation] = events_of(recovered, dg.AssetCheckEvaluation)
    assert evaluation.passed and len(alerts(client)) == 1

    clock.now += dt.timedelta(minutes=10)  # the workers stop again: a new stall, a new alert
    stalled, _ = tick(sensor, url, cursor)
    assert not events_of(stalled, dg.AssetCheckEvaluation)[0].passed and len(alerts(client)) == 2


def test_a_source_that_stops_is_stale_while_its_worker_keeps_reporting(url):
    clock = Clock(IN_SESSION)
    client = redis.Redis.from_url(url)
    write_status(client, "worker-0", status(clock.now, updated_ago=1, bar_ago=400))
    result, _ = tick(build_intraday_stream_sensor(clock=clock), url)
    [evaluation] = events_of(result, dg.AssetCheckEvaluation)
    assert not evaluation.passed and "has not moved for 400 s" in evaluation.description
    assert len(alerts(client)) == 1


@pytest.mark.parametrize(
    "now, passed",
    [
        (dt.datetime(2024, 3, 9, 14, 0, tzinfo=NY), True),  # a Saturday
        (dt.datetime(2024, 3, 5, 17, 30, tzinfo=NY), True),  # after the close
        (dt.datetime(2024, 11, 29, 13, 30, tzinfo=NY), True),  # after the 13:00 close of the day after Thanksgiving
        (dt.datetime(2024, 3, 5, 9, 32, tzinfo=NY), True),  # minutes after the open: yesterday's bars are not a stall
        (dt.datetime(2024, 3, 5, 9, 40, tzinfo=NY), False),
    ],
)
def test_only_a_quiet_stream_inside_the_session_is_stale(url, now, passed):
    client = redis.Redis.from_url(url)
    write_status(client, "worker-0", status(now, updated_ago=3600, bar_ago=3600))
    result, _ = tick(build_intraday_stream_sensor(clock=Clock(now)), url)
    [evaluation] = events_of(result, dg.AssetCheckEvaluation)
    assert evaluation.passed is passed and len(alerts(client)) == (0 if passed else 1)


def test_no_worker_at_all_during_the_session_is_stale(url):
    result, _ = tick(build_intraday_stream_sensor(clock=Clock(IN_SESSION)), url)
    [evaluation] = events_of(result, dg.AssetCheckEvaluation)
    assert not evaluation.passed and "no intraday worker" in evaluation.description


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory):
    """A redis-server that requires a password, as the manifests run it."""
    port = free_port()
    server = [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    workdir = str(tmp_path_factory.mktemp("redis-auth"))
    proc = subprocess.Popen(
        [*server, "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        wait_for_redis(url, proc)
        yield url, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_redis_password_reaches_no_metadata_log_or_skip_reason(protected_redis, caplog):
    url, port = protected_redis
    clock = Clock(IN_SESSION)
    client = redis.Redis.from_url(url)
    write_status(client, "worker-0", status(clock.now, updated_ago=900, bar_ago=900))
    client.hset(STATUS_KEY, "persisted:2024-03-04", json.dumps({"date": "2024-03-04", "bars": 1, "tickers": 1}))
    sensor = build_intraday_stream_sensor(clock=clock)
    result, _ = tick(sensor, url)
    assert len(result.asset_events) == 3  # observation, materialization, failed evaluation
    shown = [str(v.value) for e in result.asset_events for v in e.metadata.values()]
    shown += [e.description or "" for e in result.asset_events] + [r.getMessage() for r in caplog.records]
    assert shown and not any(PASSWORD in text for text in shown)

    down_port = free_port()
    for bad in (f"redis://:{PASSWORD}@127.0.0.1:{down_port}/0", f"redis://:wrong-{PASSWORD}@127.0.0.1:{port}/0"):
        skipped, _ = tick(sensor, bad)
        assert isinstance(skipped, dg.SkipReason), skipped
        assert PASSWORD not in skipped.skip_message and "127.0.0.1:" in skipped.skip_message
    assert (
        f"127.0.0.1:{down_port} unreachable"
        in tick(sensor, f"redis://:{PASSWORD}@127.0.0.1:{down_port}/0")[0].skip_message
    )


def test_the_check_runs_by_hand_too(url):
    """Executed from the UI, intraday_stream_fresh evaluates the stream now (the sensor's clock is not used)."""
    client = redis.Redis.from_url(url)
    write_status(client, "worker-0", status(dt.datetime.now(dt.UTC)))
    result = dg.materialize(
        [intraday_bars, intraday_stream_fresh],
        selection=dg.AssetSelection.checks(intraday_stream_fresh),
        resources={"redis": RedisResource(url=url)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK_NAME and evaluation.passed  # fresh whether or not the exchange is open
    assert evaluation.metadata["threshold_seconds"].value == 300


def test_without_redis_the_sensor_says_so():
    result = build_intraday_stream_sensor()(dg.build_sensor_context(resources={"redis": RedisResource()}))
    assert isinstance(result, dg.SkipReason) and "STOCKPRED_REDIS_URL" in result.skip_message


# --- reconciliation at the close -----------------------------------------------------------------------------------

SESSION = "2013-10-07"
LEAN_TICKERS = ["SPY", "AIG", "BAC", "IBM"]


def lean_session(shared_data) -> pd.DataFrame:
    """The real minute bars of the session, as `stockpred-stream persist` writes them to raw/intraday_bars."""
    replay = LeanReplay(shared_data / "intraday" / "lean", SESSION, LEAN_TICKERS)
    frame = pd.DataFrame([dataclasses.asdict(bar) for batch in replay.groups() for bar in batch])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="ms", utc=True)
    frame.insert(0, "date", pd.Timestamp(SESSION))
    return frame.astype({"interval_s": "int32"})[
        ["date", "ticker", "ts", "interval_s", "open", "high", "low", "close", "volume"]
    ]


def daily_session(shared_data) -> pd.DataFrame:
    """The daily bars of the session: the S&P 500 file's AIG, BAC and IBM, SPY's own daily file."""
    stocks = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz")
    stocks = stocks[(stocks["date"] == SESSION) & stocks["Name"].isin(LEAN_TICKERS)].rename(columns={"Name": "ticker"})
    spy = pd.read_csv(shared_data / "market" / "SPY_D.csv", index_col=0)
    spy = spy[spy["date"] == SESSION].assign(ticker="SPY")
    daily = pd.concat([stocks, spy], ignore_index=True).assign(date=pd.Timestamp(SESSION), provider="files")
    return daily[["date", "ticker", "open", "high", "low", "close", "volume", "provider"]]


def test_the_real_session_reconciles_with_its_daily_bars_and_a_bad_close_stands_out(shared_data, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    intraday = lean_session(shared_data)
    # a ticker only the stream has, and one only the daily source has
    extra = intraday[intraday["ticker"] == "IBM"].assign(ticker="IBMX")
    lake.write_partitions("raw", "intraday_bars", pd.concat([intraday, extra]), [pd.Timestamp(SESSION)])
    daily = daily_session(shared_data)
    daily.loc[daily["ticker"] == "BAC", "close"] *= 1.01  # a bad close print: 1% off
    only_daily = daily[daily["ticker"] == "AIG"].assign(ticker="XOM")
    lake.write_partitions("validated", "bars", pd.concat([daily, only_daily]), [pd.Timestamp(SESSION)])

    result = dg.materialize(
        [intraday_reconciliation],
        partition_key=SESSION,
        resources={
            "lake": LakeResource(url=str(tmp_path / "lake")),
            "duckdb": DuckDBResource(database=str(tmp_path / "catalog.duckdb")),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = {
        k: v.value for k, v in result.asset_materializations_for_node("intraday_reconciliation")[-1].metadata.items()
    }
    assert meta["tickers_compared"] == 4 and meta["within_tolerance"] == 3 and meta["outside_tolerance"] == 1
    assert meta["fields_outside_tolerance"] == {"BAC": ["close"]}
    assert meta["missing_intraday"] == 1 and meta["missing_daily"] == 1 and meta["missing_daily_tickers"] == ["IBMX"]
    assert meta["worst_field"].startswith("BAC close: -0.990%")

    table = lake.read_range("validated", "intraday_reconciliation", SESSION, SESSION).set_index("ticker")
    assert table["status"].to_dict() == {
        "AIG": "compared", "BAC": "compared", "IBM": "compared", "IBMX": "missing_daily", "SPY": "compared",
        "XOM": "missing_intraday",
    }  # fmt: skip
    ibm = table.loc["IBM"]
    # the regular session only: IBM's first trade at 09:30 (182.00) against the official open (181.85)
    assert ibm["open_intraday"] == 182.00 and ibm["open_rel_diff"] == pytest.approx(182.00 / 181.85 - 1)
    assert ibm["session_bars"] == 390 and ibm["bars"] > 390  # extended hours are in the bars, not in the prices
    assert ibm["first_bar"] == pd.Timestamp("2013-10-07 08:00", tz="UTC")  # 04:00 New York
    # volume over the whole day's bars: SPY's daily bar counts its heavy after-hours trading
    spy = table.loc["SPY"]
    assert spy["volume_intraday"] == intraday.loc[intraday["ticker"] == "SPY", "volume"].sum()
    assert spy["volume_rel_diff"] == pytest.approx(92720576 / 96070316 - 1) and spy["volume_within"]
    compared = table[table["status"] == "compared"]
    assert np.all(compared[["high_rel_diff", "low_rel_diff"]].abs() < 1e-3)
    assert not table.loc["BAC", "close_within"] and table.loc["BAC", "open_within"]
    assert pd.isna(table.loc["XOM", "within_tolerance"]) and pd.isna(table.loc["IBMX", "open_rel_diff"])


def test_a_half_day_session_closes_at_one():
    open_, close = session_hours("2013-11-29")
    assert (open_, close) == (pd.Timestamp("2013-11-29 14:30", tz="UTC"), pd.Timestamp("2013-11-29 18:00", tz="UTC"))
    assert session_hours("2013-11-28") is None  # Thanksgiving
