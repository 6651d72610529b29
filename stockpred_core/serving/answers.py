"""A batch of feature rows scored into answers: the JSON documents `POST /predict` serves and the stream pushes.

What every row of a call shares is serialized once; each row adds its own fields in front of it. The service caches
these bytes as they are and prepends what varies per response (`bento.heads`).
"""

from __future__ import annotations

import numpy as np
import orjson

from stockpred_core.serving.model import INTERVAL_LEVEL, TOP_CONTRIBUTIONS, ServedModel
from stockpred_core.serving.rows import FeatureRow

RANK_NOTE = (
    "the champion predicts cross-sectional rank scores, not returns: `prediction` orders tickers, and there is "
    "no predicted return or price"
)


def score(served: ServedModel, rows: list[FeatureRow], explain: bool) -> list[bytes]:
    """The cacheable part of each row's answer, as JSON bytes (runs in a worker thread)."""
    names = served.feature_names
    X = np.empty((len(rows), len(names)))
    layouts: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        layouts.setdefault(row.columns, []).append(i)
    for columns, positions in layouts.items():
        index = served.index_for(columns)
        X[positions] = np.stack([rows[i].values for i in positions])[:, index]
    predictions = served.model.predict_matrix(X)
    top_idx = top_val = None
    if explain:
        contrib = served.model.contributions_matrix(X)[:, :-1]  # without the bias
        k = min(TOP_CONTRIBUTIONS, contrib.shape[1])
        top_idx = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        top_val = np.take_along_axis(contrib, top_idx, axis=1)
    is_return = served.label != "rank"
    # What every row of this call shares is serialized once; each row adds its own fields in front of it.
    shared = orjson.dumps(
        {
            "model_name": served.name,
            "model_version": served.version,
            "model_family": served.family,
            "label": served.label,
            "horizon_sessions": served.horizon,
            "interval_level": INTERVAL_LEVEL,
            "explained": explain,
            "note": None if is_return else RANK_NOTE,
        }
    )
    tail = b"," + shared[1:]
    low = predictions + served.residual_q05
    high = predictions + served.residual_q95
    closes = np.array([row.close for row in rows], dtype=float)
    nan = np.full(len(rows), np.nan)
    prices = [closes * (1.0 + v) if is_return else nan for v in (predictions, low, high)]
    columns = zip(
        predictions.tolist(), low.tolist(), high.tolist(), *(v.tolist() for v in prices), closes.tolist(), strict=True
    )
    out = []
    for i, (p, lo, hi, price, price_lo, price_hi, close) in enumerate(columns):
        row = rows[i]
        doc = {
            "ticker": row.ticker,
            "prediction": p,
            "predicted_return": p if is_return else None,
            "predicted_price": price if is_return else None,
            "interval_low": lo,
            "interval_high": hi,
            "price_interval_low": price_lo if is_return else None,
            "price_interval_high": price_hi if is_return else None,
            "last_close": close,
            "feature_date": row.date,
            "feature_time": row.as_of,
            "feature_set_version": row.feature_set_version,
            "top_contributions": []
            if top_idx is None
            else [
                {"feature": names[j], "value": float(X[i, j]), "contribution": float(c)}
                for j, c in zip(top_idx[i], top_val[i], strict=True)
            ],
        }
        out.append(orjson.dumps(doc)[:-1] + tail)
    return out
