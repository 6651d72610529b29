"""The service and a champion of the Alpha158-like library: it answers from vectors that carry the library (the
close's, or the stream's while it computes it) and refuses, ticker by ticker, a stream vector without it (the layout's
first columns only), naming what is missing, while the other tickers of the same call are answered."""

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
import redis
from support.service import online_frame, register

from bento.predictor import Predictor
from stockpred_assets.serving.assets import library_last
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION, LIBRARY_COLUMNS
from stockpred_core.io.online_store import IntradayWriter, push_vectors, vector_columns
from stockpred_core.models.baselines import LinearForecaster
from stockpred_core.settings import load_settings


def register_library_champion(settings) -> str:
    rng = np.random.default_rng(5)
    columns = [*FEATURE_COLUMNS, *LIBRARY_COLUMNS]
    X = pd.DataFrame(rng.normal(size=(600, len(columns))), columns=columns)
    y = pd.Series(0.01 * X["ret_5"] + 0.02 * X["a158_kmid"] + 0.01 * rng.normal(size=600))
    model = LinearForecaster(alpha=1.0).fit(X, y)
    return register(settings, model, example=X.head(3), feature_set_version=FEATURE_SET_VERSION, horizon=1)


@pytest.mark.slow
def test_a_library_champion_refuses_only_the_stream_vectors_without_it(tmp_path, redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/13"  # flushed by this test only
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = load_settings(
        {"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path), "STOCKPRED_REDIS_URL": url,
         "STOCKPRED_MODEL_POLL_SECONDS": "600"}
    )  # fmt: skip
    frame = online_frame(4)
    rng = np.random.default_rng(2)
    library = pd.DataFrame(rng.normal(size=(len(frame), len(LIBRARY_COLUMNS))), frame.index, LIBRARY_COLUMNS)
    frame = library_last(pd.concat([frame, library], axis=1))
    push_vectors(client, frame)  # the close's vectors, the library last
    columns = vector_columns(frame)
    assert columns[-len(LIBRARY_COLUMNS) :] == LIBRARY_COLUMNS
    short = frame[columns].to_numpy()[2:3, : -len(LIBRARY_COLUMNS)]  # the stream's vector of T00003, no library
    pipe = client.pipeline(transaction=True)
    IntradayWriter(client).queue(
        pipe, columns, ["T00003"], str(frame["date"].iloc[0].date()), ["2026-12-07T15:00:00.000Z"], short,
        FEATURE_SET_VERSION,
    )  # fmt: skip
    pipe.execute()
    register_library_champion(settings)
    predictor = Predictor(settings)
    predictor.load()

    async def main():
        await predictor.start()
        try:
            return await predictor.predict(["T00001", "T00002", "T00003"], None, False)
        finally:
            await predictor.stop()

    out = asyncio.run(main())
    assert set(out.answers) == {"T00001", "T00002"}
    for ticker in ("T00001", "T00002"):
        assert np.isfinite(json.loads(out.answers[ticker])["prediction"])
    status, reason = out.errors["T00003"]
    assert status == 503 and "lacks: ['a158_kmid'" in reason and "STOCKPRED_FEATURE_FAMILIES" in reason
    client.flushdb()
