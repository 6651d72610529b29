"""A session's intraday bars go from the store to the lake's raw/intraday_bars, partitioned by the New York session
date, replaced (never duplicated) when persisted again."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import redis
from support.doc_commands import as_argv, doc_options

from stockpred_core.io.lake import Lake
from stockpred_core.io.stream_events import read_status
from stream.bars import Bar
from stream.persist import LAYER, TABLE, persist_session
from stream.worker import IntradayStore

COMMAND = shutil.which("stockpred-stream", path=str(Path(sys.executable).parent))
# 2014-01-06, a winter Monday: New York is UTC-5, so a 19:30 evening bar starts on the next UTC date
OPEN = int(pd.Timestamp("2014-01-06 09:30", tz="America/New_York").timestamp() * 1000)
EVENING = int(pd.Timestamp("2014-01-06 19:30", tz="America/New_York").timestamp() * 1000)
NEXT_DAY = int(pd.Timestamp("2014-01-07 09:30", tz="America/New_York").timestamp() * 1000)


def bar(ticker: str, ts: int, close: float) -> Bar:
    return Bar(ticker, ts, 60, close, close + 0.5, close - 0.5, close, 100.0)


def test_a_session_lands_in_its_new_york_date_partition_and_a_rerun_replaces_it(redis_url, prefix, tmp_path):
    client = redis.Redis.from_url(redis_url)
    store = IntradayStore(client, prefix=prefix)
    store.apply([bar("AAA", OPEN, 10.0), bar("BBB", OPEN, 20.0), bar("AAA", OPEN + 60_000, 10.25)])
    store.apply([bar("AAA", EVENING, 10.5), bar("AAA", NEXT_DAY, 11.0)])
    lake = Lake(str(tmp_path / "lake"))

    written = persist_session(client, lake, dt.date(2014, 1, 6), prefix)
    assert written["bars"] == 4 and written["tickers"] == 2
    stored = lake.read_range(LAYER, TABLE, "2014-01-06", "2014-01-06")
    assert list(zip(stored["ticker"], stored["close"], strict=True)) == [
        ("AAA", 10.0),
        ("AAA", 10.25),
        ("AAA", 10.5),  # the evening bar, on 2014-01-07 in UTC, belongs to the 2014-01-06 session
        ("BBB", 20.0),
    ]
    assert (stored["date"] == pd.Timestamp("2014-01-06")).all()

    store.apply([bar("BBB", OPEN + 60_000, 20.5)])  # a late bar, then the session persisted again
    assert persist_session(client, lake, dt.date(2014, 1, 6), prefix)["bars"] == 5
    again = lake.read_range(LAYER, TABLE, "2014-01-06", "2014-01-06")
    assert len(again) == 5 and not again.duplicated(["ticker", "ts"]).any()
    # the write is recorded where Dagster's sensor reads it (a materialization of intraday_bars, partition D)
    assert read_status(client)["persisted:2014-01-06"] == {**written, "bars": 5}


def test_the_persist_command_writes_the_lake_of_the_settings(redis_url, prefix, tmp_path):
    IntradayStore(redis.Redis.from_url(redis_url), prefix=prefix).apply([bar("CCC", OPEN, 5.0)])
    env = {**os.environ, "STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path)}
    # the command docs/operations.md shows, on this test's Redis, session and keys
    options = doc_options(r"^\.venv/bin/stockpred-stream persist ") | {"--redis-url": redis_url}
    options |= {"--date": "2014-01-06", "--store-prefix": prefix}
    argv = [COMMAND, "persist", *as_argv(options)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bars"] == 1
    assert Lake(str(tmp_path / "lake")).read_range(LAYER, TABLE, "2014-01-06", "2014-01-06")["ticker"].tolist() == [
        "CCC"
    ]
