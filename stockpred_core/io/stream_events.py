"""What the intraday path tells the rest of the platform, in Redis: one events stream and one status hash.

- `stockpred:events` (a Redis Stream, capped): one entry per worker batch of refreshed predictions and one per alert,
  in one id space so a push client resumes from the last entry id it saw, whatever its kind. Fields:
  `kind` ("predictions" | "alert"), `tickers` (the tickers the entry is about, newline-joined: a relay filters on
  them without parsing `data`) and `data` (JSON):
  - predictions: {"as_of": ISO UTC time of the newest bar behind the features, "model_version": ...,
    "predictions": [answer, ...]}, each answer the JSON document `POST /predict` returns for that ticker (it holds
    "ticker", "feature_date" and "feature_time");
  - alert: {"subscriber", "rule", "ticker", "value", "threshold", "message", "as_of", "model_version"}.
- `stockpred:alerts` (a Redis Stream, capped far higher): every alert again, alone, the `alerts` stream: what the
  notifier consumes, the daily report counts and the dashboard's feed shows, without reading through the far more
  numerous prediction events (which the events stream trims within minutes at 1,000 tickers a second);
- `stockpred:stream:status` (a hash): per worker consumer name, JSON {"last_bar_end_ms", "lag_seconds", counters...,
  "updated_at"} refreshed by the worker at most once a second; `persisted:<YYYY-MM-DD>` -> JSON of the lake write
  (`stockpred-stream persist`). Dagster's sensor reads it (observations of the external `intraday_bars` asset).

Both sides import this module (the stream worker, the service's push relay, the Dagster sensor): no Dagster here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import orjson
import redis

EVENTS_KEY = "stockpred:events"
EVENTS_MAXLEN = 100_000  # entries (~ 100 s of per-batch events at 1,000 batches/s): a client further behind resyncs
ALERTS_KEY = "stockpred:alerts"
ALERTS_MAXLEN = 1_000_000  # alerts (days of them: rules alert on crossings, with a cool-down)
STATUS_KEY = "stockpred:stream:status"
PREDICTIONS, ALERT = "predictions", "alert"
PERSISTED = "persisted:"  # status fields of the lake writes


def prediction_fields(
    as_of: str, model_version: str, answers: Sequence[bytes], tickers: Sequence[str] | None = None
) -> dict[str, bytes | str]:
    """One predictions entry: `answers` are the JSON documents as the service serves them (bytes, not re-parsed),
    `tickers` theirs in the same order (read from the answers when the caller does not have them)."""
    if tickers is None:
        tickers = [orjson.loads(a)["ticker"] for a in answers]
    head = orjson.dumps({"as_of": as_of, "model_version": model_version})[:-1]
    data = head + b',"predictions":[' + b",".join(answers) + b"]}"
    return {"kind": PREDICTIONS, "tickers": "\n".join(tickers), "data": data}


def alert_fields(alert: Mapping) -> dict[str, bytes | str]:
    return {"kind": ALERT, "tickers": str(alert["ticker"]), "data": orjson.dumps(dict(alert))}


def add_event(pipe: redis.client.Pipeline | redis.Redis, fields: Mapping, maxlen: int = EVENTS_MAXLEN) -> None:
    """XADD an entry to the events stream (on a pipeline: sent with the batch's other writes)."""
    pipe.xadd(EVENTS_KEY, dict(fields), maxlen=maxlen, approximate=True)


def add_alert(pipe: redis.client.Pipeline | redis.Redis, alert: Mapping) -> None:
    """An alert to the events stream (push) and to the alerts stream (the notifier, the daily report, the feed)."""
    fields = alert_fields(alert)
    add_event(pipe, fields)
    pipe.xadd(ALERTS_KEY, fields, maxlen=ALERTS_MAXLEN, approximate=True)


def parse_event(fields: Mapping[bytes, bytes]) -> tuple[str, list[str], dict]:
    """(kind, tickers, data) of an events-stream entry."""
    kind = fields[b"kind"].decode()
    tickers = [t for t in fields.get(b"tickers", b"").decode().split("\n") if t]
    return kind, tickers, orjson.loads(fields[b"data"])


def write_status(pipe: redis.client.Pipeline | redis.Redis, consumer: str, status: Mapping) -> None:
    pipe.hset(STATUS_KEY, consumer, json.dumps(dict(status), allow_nan=False))


def read_status(client: redis.Redis) -> dict[str, dict]:
    """Every field of the status hash, decoded: consumer -> status, `persisted:<date>` -> the lake write."""
    return {k.decode(): json.loads(v) for k, v in client.hgetall(STATUS_KEY).items()}


def consumers(status: Mapping[str, dict]) -> Iterable[tuple[str, dict]]:
    return ((name, value) for name, value in status.items() if not name.startswith(PERSISTED))
