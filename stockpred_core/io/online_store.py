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

During the session the stream worker replaces a ticker's hash with its intraday vector (`IntradayWriter`): `ticker`,
`date` (the session), `as_of` (ISO UTC time the newest bar behind it ended), `feature_set_version`, `close` and
`vector` only, since 60 readable fields per ticker per bar would cost Redis more than the rest of the path; the
close's push writes the readable fields again. `fetch_vector` decodes `vector` either way. A layout ends with the
Alpha158-like library's columns; while the stream does not compute them (`STOCKPRED_FEATURE_FAMILIES` does not name
`alpha158` and its champion does not take them) its vectors leave them out, holding the layout's other columns.

No Dagster here: the service and the stream worker import this module.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from stockpred_core.serving.rows import vector_layout

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
    values = decode_vector(fields[VECTOR_FIELD]).tolist()
    out.update(zip(vector_layout(ticker, json.loads(layout), len(values)), values, strict=True))
    return out


# One call per batch: per ticker, its hash written (replaced, with a TTL, at its first intraday write: the close's
# push left readable fields the intraday hash does not keep) and, when given, its answer SET with a TTL
# under `<answer prefix><ticker>:<session>@<as_of><answer suffix>` (the service's cache key); then the meta marked.
# The batch travels as a few long arguments (newline-joined texts, the vectors as one blob of fixed-width rows), since
# encoding arguments is what costs the client: ~4,000 pipelined commands for 1,000 tickers took redis-py ~250 ms to
# pack and queue, ~6,000 arguments ~14 ms, these 15 ~1 ms (stream/predictions.py, profiled at 1,000 tickers a batch).
_INTRADAY = """
local prefix, session, version, ttl, answer_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local meta, newest, layout, answer_prefix, answer_suffix = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local function lines(text)
  local out = {}
  for line in string.gmatch(text, '[^\\n]+') do out[#out + 1] = line end
  return out
end
local tickers, as_of, closes, answers = lines(ARGV[11]), lines(ARGV[12]), lines(ARGV[13]), lines(ARGV[16])
local vectors, width = ARGV[14], tonumber(ARGV[15])
for i = 1, #tickers do
  local key = prefix .. tickers[i]
  local fresh = redis.call('HEXISTS', key, 'as_of') == 0  -- the close's hash (readable fields too) or none yet
  if fresh then redis.call('DEL', key) end
  redis.call('HSET', key, 'ticker', tickers[i], 'date', session, 'as_of', as_of[i], 'feature_set_version', version,
             'close', closes[i], 'vector', string.sub(vectors, (i - 1) * width + 1, i * width))
  if fresh then redis.call('EXPIRE', key, ttl) end
  if answer_prefix ~= '' then
    local cache_key = answer_prefix .. tickers[i] .. ':' .. session .. '@' .. as_of[i] .. answer_suffix
    redis.call('SET', cache_key, answers[i], 'EX', answer_ttl)
  end
end
redis.call('HSET', meta, 'intraday_as_of', newest)
redis.call('HSETNX', meta, 'columns:' .. version, layout)
return #tickers
"""


class IntradayWriter:
    """Writes a batch of intraday vectors (and the answers computed from them) in one script call, queued on the
    caller's pipeline so it commits with the batch's other writes."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._script = client.register_script(_INTRADAY)

    def queue(
        self,
        pipe: redis.client.Pipeline,
        columns: list[str],
        tickers: list[str],
        session: str,
        as_of: list[str],
        matrix: np.ndarray,
        feature_set_version: str,
        answers: tuple[str, str, list[bytes]] | None = None,
        answer_ttl: int = 3600,
    ) -> None:
        """Queue the vectors of `tickers` (rows of `matrix` in `columns` order) as of the given times and, with
        `answers` (the cache key's prefix and suffix, one answer per ticker: JSON without raw newlines), the answers
        under `<prefix><ticker>:<session>@<as_of><suffix>`."""
        if not tickers:
            return
        matrix = np.ascontiguousarray(matrix, dtype="<f8")  # its rows may hold the first columns of `columns` only
        closes = "\n".join(_text(v) for v in matrix[:, columns.index("close")].tolist())
        prefix, suffix, docs = answers if answers is not None else ("", "", [])
        args = [KEY_PREFIX, session, feature_set_version, self.ttl_seconds, answer_ttl, META_KEY, max(as_of)]
        args += [json.dumps(columns), prefix, suffix, "\n".join(tickers), "\n".join(as_of), closes]
        args += [matrix.tobytes(), matrix.shape[1] * 8, b"\n".join(docs)]
        self._script(args=args, client=pipe)


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
