"""The predictions a canary's variants served, kept in a Redis stream so that their live rank IC can be measured
once the realized returns arrive (the `canary_live_ic` asset, monitoring group).

While a canary takes traffic, each service worker writes, about once a second, one entry per (variant, model
version, feature date, horizon) holding the (ticker, prediction) pairs it answered that it had not written yet:
each distinct answer once, however many clients asked for it. The stream keeps ~`MAXLEN` entries.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pandas as pd
import redis

SERVED_KEY = "stockpred:canary:served"
STATE_KEY = "stockpred:canary"  # the canary's shared state: requested share, rolled-back version, reason, time
MAXLEN = 200_000
COLUMNS = ["variant", "model_version", "date", "horizon", "ticker", "prediction"]

Group = tuple[str, str, str, int]  # variant, model version, feature date, horizon


def served_fields(group: Group, rows: Iterable[tuple[str, float]]) -> dict[str, bytes | str]:
    variant, version, date, horizon = group
    return {
        "variant": variant,
        "model_version": version,
        "date": date,
        "horizon": str(horizon),
        "rows": orjson.dumps([[str(ticker), float(prediction)] for ticker, prediction in rows]),
    }


def add_served(pipe: redis.client.Pipeline | redis.Redis, groups: dict[Group, list[tuple[str, float]]]) -> None:
    for group, rows in groups.items():
        if rows:
            pipe.xadd(SERVED_KEY, served_fields(group, rows), maxlen=MAXLEN, approximate=True)


def decode_state(raw: dict[bytes, bytes]) -> dict[str, str]:
    """The canary's shared state from its Redis hash: empty fields (a cleared rollback) left out."""
    return {k.decode(): v.decode() for k, v in raw.items() if v}


def read_state(client: redis.Redis) -> dict[str, str]:
    """The canary's shared state as the service's workers keep it (bento.canary)."""
    return decode_state(client.hgetall(STATE_KEY))


def read_served(client: redis.Redis, count: int = 10_000) -> pd.DataFrame:
    """Every served (variant, model_version, date, horizon, ticker, prediction) in the stream, one row per distinct
    answer (the workers each write theirs once: duplicates across workers are dropped here)."""
    rows: list[tuple] = []
    start = "-"
    while True:
        entries = client.xrange(SERVED_KEY, min=start, count=count)
        for _, fields in entries:
            variant, version = fields[b"variant"].decode(), fields[b"model_version"].decode()
            date, horizon = fields[b"date"].decode(), int(fields[b"horizon"])
            rows.extend((variant, version, date, horizon, t, float(p)) for t, p in orjson.loads(fields[b"rows"]))
        if len(entries) < count:
            break
        start = "(" + entries[-1][0].decode()
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.drop_duplicates(["variant", "model_version", "date", "horizon", "ticker"], ignore_index=True)
