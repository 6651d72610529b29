"""A real recorded session replayed through the whole bus: `stockpred-stream replay` XADDs the Lean minute bars of
SPY, AIG, BAC and IBM on 2013-10-07, `stockpred-stream worker` applies them, and the intraday store then holds exactly
the recorded session."""

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from support import SHARED_DATA
from support.doc_commands import as_argv, doc_options
from support.waiting import wait_until

from stream.sources import LeanReplay
from stream.worker import IntradayStore

LEAN = SHARED_DATA / "intraday" / "lean"
TICKERS = ["SPY", "AIG", "BAC", "IBM"]
COMMAND = shutil.which("stockpred-stream", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(not LEAN.is_dir(), reason=f"reference data not found at {SHARED_DATA}")


def test_a_recorded_session_replayed_through_the_bus_lands_bar_for_bar_in_the_store(redis_url, prefix):
    client = redis.Redis.from_url(redis_url)
    common = ["--redis-url", redis_url, "--shards", "2", "--prefix", f"{prefix}:bars"]
    worker = subprocess.Popen(
        [COMMAND, "worker", *common, "--processes", "2", "--store-prefix", f"{prefix}:intraday", "--block-ms", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the command docs/operations.md shows, at minute resolution, on this test's Redis and keys
        options = doc_options(r"^\.venv/bin/stockpred-stream replay ")
        assert options["--lean"] == "../shared/data/intraday/lean" and options["--date"] == "2013-10-07"
        assert options["--tickers"].split(",") == TICKERS and options["--shards"] == "4"
        options |= {"--redis-url": redis_url, "--shards": "2", "--lean": str(LEAN), "--resolution": "minute"}
        replay = subprocess.run(
            [COMMAND, "replay", *as_argv(options), "--prefix", f"{prefix}:bars"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        totals = json.loads(replay.stdout.strip().splitlines()[-1])
        recorded = [bar for batch in LeanReplay(LEAN, "2013-10-07", TICKERS).groups() for bar in batch]
        assert totals["done"] and totals["bars"] == len(recorded) > 1500
        # the recording runs into the evening session: its last minute ends at 20:00 New York
        assert totals["session_time"] == "2013-10-08T00:00:00+00:00" == _utc(max(bar.end_ms for bar in recorded))
        store = IntradayStore(client, prefix=f"{prefix}:intraday")
        wait_until(lambda: sum(len(store.day_bars(t, "2013-10-07")) for t in TICKERS) == len(recorded))
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    for ticker in TICKERS:
        assert store.day_bars(ticker, "2013-10-07") == [bar for bar in recorded if bar.ticker == ticker]
        assert store.latest(ticker) == [bar for bar in recorded if bar.ticker == ticker][-1]
    counters = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sum(c["applied"] for c in counters) == len(recorded)
    assert sum(c["duplicates"] + c["out_of_order"] + c["dead_lettered"] for c in counters) == 0


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def test_replay_refuses_options_that_name_no_source(redis_url):
    out = subprocess.run([COMMAND, "replay", "--redis-url", redis_url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "name a source" in out.stderr
