"""Online feature vectors in Redis: one JSON document per ticker, written by the serving asset, read by the service."""

from __future__ import annotations

import json

import pandas as pd
import redis

KEY_PREFIX = "stockpred:online:"


def push_vectors(client: redis.Redis, latest: pd.DataFrame, ttl_seconds: int = 7 * 24 * 3600) -> int:
    """Store each row of `latest` (one per ticker) under its ticker; returns the number written."""
    pipe = client.pipeline()
    for row in latest.to_dict("records"):
        row["date"] = pd.Timestamp(row["date"]).strftime("%Y-%m-%d")
        pipe.set(f"{KEY_PREFIX}{row['ticker']}", json.dumps(row, default=float), ex=ttl_seconds)
    pipe.execute()
    return len(latest)


def fetch_vector(client: redis.Redis, ticker: str) -> dict | None:
    raw = client.get(f"{KEY_PREFIX}{ticker}")
    return None if raw is None else json.loads(raw)
