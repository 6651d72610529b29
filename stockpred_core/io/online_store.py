"""Online feature vectors in Redis, written by the `online_features` asset and read by the prediction service.

Layout (one hash per ticker, so a reader takes only the fields it needs):

- `stockpred:online:<TICKER>`: `ticker`, `date` (YYYY-MM-DD), `feature_set_version`, one field per feature column
  (a readable float, "nan" when missing) and `vector`: the same numbers as little-endian float64 bytes in the order
  of the meta's `columns:<feature_set_version>`, which the service decodes without parsing 60 strings per ticker;
- `stockpred:online-meta`: `latest_date`, `count`, `feature_set_version`, `written_at`, `columns:<version>`, and
  `intraday_as_of` while the stream worker refreshes vectors during the session (the close's push clears it);
- `stockpred:online-tickers`: the set of tickers written last, so tickers that left the universe are deleted;
- `stockpred:online-snapshot`: every ticker's vector packed in one hash (`written_at`, `columns`, and newline-joined
  `tickers`, `dates`, `versions`, then `matrix`: the float64 rows in that order), written in the same transaction as
  the meta. A service worker reads it once per rewrite (when `written_at` changes) and answers batches from it: a
  batch of 10,000 tickers then costs no per-ticker read, where 10,000 hash reads took Redis ~80 ms.

During the session the stream worker replaces a ticker's hash with its intraday vector (`write_intraday`): `ticker`,
`date` (the session), `as_of` (ISO UTC time the newest bar behind it ended), `feature_set_version`, `close` and
`vector` only, since 60 readable fields per ticker per bar would cost Redis more than the rest of the path; the
close's push writes the readable fields again. `fetch_vector` decodes `vector` either way.

No Dagster here: the service and the stream worker import this module.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

KEY_PREFIX = "stockpred:online:"
META_KEY = "stockpred:online-meta"
TICKERS_KEY = "stockpred:online-tickers"
SNAPSHOT_KEY = "stockpred:online-snapshot"
VECTOR_FIELD = "vector"
INTRADAY_FIELD = "intraday_as_of"
TEXT_FIELDS = ("ticker", "date", "feature_set_version", "as_of")
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
CHUNK = 1000


def online_key(ticker: str) -> str:
    return f"{KEY_PREFIX}{ticker}"


def vector_columns(latest: pd.DataFrame) -> list[str]:
    """The numeric columns of an online-features frame, in frame order (what `vector` holds)."""
    return [c for c in latest.columns if c not in TEXT_FIELDS and pd.api.types.is_numeric_dtype(latest[c])]


def _text(value: float) -> str:
    return "nan" if value is None or value != value else repr(float(value))


def push_vectors(client: redis.Redis, latest: pd.DataFrame, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> int:
    """Replace the online vectors with the rows of `latest` (one per ticker); returns the number written."""
    if latest.empty:
        return 0
    columns = vector_columns(latest)
    matrix = latest[columns].to_numpy(dtype="<f8")
    dates = pd.to_datetime(latest["date"]).dt.strftime("%Y-%m-%d").tolist()
    tickers = latest["ticker"].astype(str).tolist()
    versions = (
        latest["feature_set_version"].astype(str).tolist() if "feature_set_version" in latest else [""] * len(latest)
    )
    for start in range(0, len(latest), CHUNK):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + CHUNK, len(latest))):
            key = online_key(tickers[i])
            fields = {name: _text(v) for name, v in zip(columns, matrix[i], strict=True)}
            fields.update(ticker=tickers[i], date=dates[i], feature_set_version=versions[i])
            fields[VECTOR_FIELD] = matrix[i].tobytes()
            pipe.delete(key)  # a hash is replaced whole, so no field of an older feature set survives
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl_seconds)
        pipe.execute()
    gone = {t.decode() for t in client.smembers(TICKERS_KEY)} - set(tickers)
    latest_version = versions[int(np.argmax(pd.to_datetime(latest["date"]).to_numpy()))]
    pipe = client.pipeline(transaction=True)
    for ticker in gone:
        pipe.delete(online_key(ticker))
    written_at = repr(time.time())
    pipe.delete(TICKERS_KEY, SNAPSHOT_KEY, "stockpred:online-dates")  # the last: an older ticker -> date index
    pipe.sadd(TICKERS_KEY, *tickers)
    pipe.hset(
        SNAPSHOT_KEY,
        mapping={
            "written_at": written_at,
            "columns": json.dumps(columns),
            "tickers": "\n".join(tickers),
            "dates": "\n".join(dates),
            "versions": "\n".join(versions),
            "matrix": np.ascontiguousarray(matrix).tobytes(),
        },
    )
    pipe.expire(SNAPSHOT_KEY, ttl_seconds)
    pipe.hdel(META_KEY, INTRADAY_FIELD)  # the close's vectors replace the session's
    pipe.hset(
        META_KEY,
        mapping={
            "latest_date": max(dates),
            "count": len(tickers),
            "feature_set_version": latest_version,
            "written_at": written_at,
            **{f"columns:{v}": json.dumps(columns) for v in set(versions)},
        },
    )
    pipe.execute()
    return len(latest)


def fetch_vector(client: redis.Redis, ticker: str) -> dict | None:
    """One ticker's online vector as {column: value} with its `ticker`, `date`, `feature_set_version` (and `as_of`
    for an intraday one), decoded from `vector` in the layout the meta records for its feature set."""
    fields = {k.decode(): v for k, v in client.hgetall(online_key(ticker)).items()}
    if not fields:
        return None
    out: dict = {name: fields[name].decode() for name in TEXT_FIELDS if name in fields}
    layout = client.hget(META_KEY, f"columns:{out.get('feature_set_version', '')}")
    if layout is None or VECTOR_FIELD not in fields:
        raise ValueError(f"the online vector of {ticker} has no layout in {META_KEY}")
    out.update(zip(json.loads(layout), decode_vector(fields[VECTOR_FIELD]).tolist(), strict=True))
    return out


def write_intraday(
    pipe: redis.client.Pipeline,
    columns: list[str],
    tickers: list[str],
    session: str,
    as_of: list[str],
    matrix: np.ndarray,
    feature_set_version: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> None:
    """Queue on `pipe` the intraday vectors of `tickers` (rows of `matrix` in `columns` order), as of the given
    times, replacing each ticker's hash, and mark the meta (`intraday_as_of`, and the layout of the feature set when
    the close's push has not recorded it)."""
    matrix = np.ascontiguousarray(matrix, dtype="<f8")
    close_at = columns.index("close")
    for i, ticker in enumerate(tickers):
        key = online_key(ticker)
        pipe.delete(key)
        pipe.hset(
            key,
            mapping={
                "ticker": ticker,
                "date": session,
                "as_of": as_of[i],
                "feature_set_version": feature_set_version,
                "close": _text(matrix[i, close_at]),
                VECTOR_FIELD: matrix[i].tobytes(),
            },
        )
        pipe.expire(key, ttl_seconds)
    if tickers:
        pipe.hset(META_KEY, INTRADAY_FIELD, max(as_of))
        pipe.hsetnx(META_KEY, f"columns:{feature_set_version}", json.dumps(columns))


def read_meta(client: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(META_KEY).items()}


def decode_vector(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f8")


@dataclass(frozen=True)
class Snapshot:
    """Every ticker's online vector as of one write (`push_vectors`): row i of `matrix` is `tickers[i]`'s vector in
    `columns` order, dated `dates[i]`, of feature set `versions[i]`."""

    written_at: str
    columns: tuple[str, ...]
    tickers: list[str]
    dates: list[str]
    versions: list[str]
    matrix: np.ndarray


def read_snapshot(client: redis.Redis) -> Snapshot | None:
    """The packed snapshot of the last write (None when the store holds none)."""
    return decode_snapshot(client.hgetall(SNAPSHOT_KEY))


def decode_snapshot(fields: dict[bytes, bytes]) -> Snapshot | None:
    """A snapshot from the raw fields of its hash; None when there are none, ValueError when they disagree."""
    if not fields:
        return None
    columns = tuple(json.loads(fields[b"columns"]))
    tickers, dates, versions = (fields[name].decode().split("\n") for name in (b"tickers", b"dates", b"versions"))
    matrix = np.frombuffer(fields[b"matrix"], dtype="<f8")
    if not (len(tickers) == len(dates) == len(versions)) or matrix.size != len(tickers) * len(columns):
        raise ValueError(
            f"inconsistent online snapshot: {len(tickers)} tickers, {len(dates)} dates, {len(versions)} versions, "
            f"{matrix.size} values for {len(columns)} columns"
        )
    return Snapshot(
        fields[b"written_at"].decode(), columns, tickers, dates, versions, matrix.reshape(len(tickers), len(columns))
    )
