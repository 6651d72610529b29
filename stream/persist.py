"""The day's intraday bars, from the intraday store into the lake: `raw/intraday_bars`, partitioned by the exchange
session's date (New York), one partition replaced atomically per run, so running it again after late bars replaces
rather than duplicates (the lake's write_partitions)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import redis

from stockpred_core.io.lake import Lake
from stockpred_core.io.stream_events import PERSISTED, write_status
from stream.worker import INTRADAY_PREFIX, IntradayStore

EXCHANGE = ZoneInfo("America/New_York")
LAYER, TABLE = "raw", "intraday_bars"
COLUMNS = ["date", "ticker", "ts", "interval_s", "open", "high", "low", "close", "volume"]


def session_bars(client: redis.Redis, session: dt.date, prefix: str = INTRADAY_PREFIX) -> pd.DataFrame:
    """Every stored bar that starts on `session` in New York, by ticker and time. The store keys bars by UTC date;
    an evening bar in winter (after 19:00 New York) is on the next UTC date, so both are read."""
    store = IntradayStore(client, prefix=prefix)
    utc_dates = {f"{session:%Y-%m-%d}", f"{session + dt.timedelta(days=1):%Y-%m-%d}"}
    rows = []
    for key in client.scan_iter(f"{prefix}:bars:*", count=1000):
        ticker, _, date = key.decode()[len(prefix) + len(":bars:") :].rpartition(":")
        if date in utc_dates:
            rows += [
                (b.ticker, b.ts, b.interval_s, b.open, b.high, b.low, b.close, b.volume)
                for b in store.day_bars(ticker, date)
            ]
    frame = pd.DataFrame(rows, columns=COLUMNS[1:])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="ms", utc=True)
    frame = frame[frame["ts"].dt.tz_convert(EXCHANGE).dt.date == session]
    frame.insert(0, "date", pd.Timestamp(session))
    return frame.sort_values(["ticker", "ts"], ignore_index=True).astype({"interval_s": "int32"})


def persist_session(client: redis.Redis, lake: Lake, session: dt.date, prefix: str = INTRADAY_PREFIX) -> dict:
    """Write the session's bars to the lake (replacing its partition) and record the write in the stream's status
    hash (`persisted:<date>`: Dagster's sensor reports it as a materialization of `intraday_bars`); what was written."""
    frame = session_bars(client, session, prefix)
    [path] = lake.write_partitions(LAYER, TABLE, frame, [pd.Timestamp(session)])
    day = f"{session:%Y-%m-%d}"
    written = {"date": day, "bars": len(frame), "tickers": int(frame["ticker"].nunique()), "path": path}
    write_status(client, f"{PERSISTED}{day}", written)
    return written
