"""The service serves whichever feature set its champion was trained on: a champion of the combined (technical +
alternative) set answers from combined online vectors and is refused, with the reason, on technical-only ones; a
technical champion answers from either."""

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from support.service import online_frame, register

from bento.predictor import Predictor
from stockpred_core.dataset.training_set import MASKS
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, FAMILIES, feature_set_version
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION
from stockpred_core.io.lake import Lake
from stockpred_core.models.baselines import LinearForecaster
from stockpred_core.settings import load_settings

COMBINED = feature_set_version(FAMILIES)


def with_alt(frame: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """Online vectors of the combined set: `frame`'s technical columns, then the alternative ones (the first two
    tickers without a news source: NaN and mask 0)."""
    rng = np.random.default_rng(seed)
    out = frame.drop(columns="feature_set_version")
    for column in ALT_COLUMNS:
        out[column] = rng.normal(size=len(out))
    out[MASKS] = 1.0
    out.loc[:1, [c for c in ALT_COLUMNS if c.startswith("news_")]] = np.nan
    out.loc[:1, "news_covered"] = 0.0
    out["feature_set_version"] = COMBINED
    return out


def register_alt_champion(settings) -> str:
    rng = np.random.default_rng(5)
    columns = [*FEATURE_COLUMNS, *ALT_COLUMNS]
    X = pd.DataFrame(rng.normal(size=(600, len(columns))), columns=columns)
    y = pd.Series(0.01 * X["ret_5"] + 0.02 * X["news_sentiment"] + 0.01 * rng.normal(size=600))
    model = LinearForecaster(alpha=1.0).fit(X, y)
    return register(settings, model, example=X.head(3), feature_set_version=COMBINED, horizon=5)


def answer(predictor: Predictor, tickers: list[str]):
    async def main():
        await predictor.start()
        try:
            return await predictor.predict(tickers, None, True)
        finally:
            await predictor.stop()

    return asyncio.run(main())


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path), "STOCKPRED_MODEL_POLL_SECONDS": "600"}


@pytest.mark.slow
def test_a_champion_of_the_combined_set_needs_vectors_with_the_alternative_columns(env):
    settings = load_settings(env)
    lake = Lake(settings.lake_url)
    technical = online_frame(6)
    combined = with_alt(technical)
    lake.write_table("serving", "online_features", combined)
    register_alt_champion(settings)
    predictor = Predictor(settings)
    predictor.load()
    ready, body = predictor.readiness()
    assert ready and body["model"]["feature_set_version"] == COMBINED
    out = answer(predictor, ["T00001", "T00004"])
    assert not out.errors
    for ticker in ("T00001", "T00004"):
        doc = json.loads(out.answers[ticker])
        assert doc["feature_set_version"] == COMBINED and np.isfinite(doc["prediction"])
    # the ticker without news is scored with its news columns missing (NaN, mask 0): its answer moves with them
    news = json.loads(out.answers["T00001"])["top_contributions"]
    assert all(c["feature"] != "news_sentiment" for c in news)
    assert "news_sentiment" in {c["feature"] for c in json.loads(out.answers["T00004"])["top_contributions"]}

    lake.write_table("serving", "online_features", technical)  # the alternative table fell behind
    predictor = Predictor(settings)
    predictor.load()
    ready, body = predictor.readiness()
    assert not ready
    assert f"trained on feature set {COMBINED}, online features are ['{FEATURE_SET_VERSION}']" in body["reasons"][0]
    assert "materialize alt_features for the latest day, then online_features" in body["reasons"][0]
    out = answer(predictor, ["T00002"])
    status, reason = out.errors["T00002"]
    assert status == 503 and f"was trained on {COMBINED}: materialize alt_features" in reason
    assert not out.answers


@pytest.mark.slow
def test_a_technical_champion_answers_from_combined_vectors_too(env):
    settings = load_settings(env)
    lake = Lake(settings.lake_url)
    technical = online_frame(4)
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(400, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    register(settings, LinearForecaster().fit(X, pd.Series(0.01 * X["ret_5"])))
    answers = {}
    for name, frame in (("technical", technical), ("combined", with_alt(technical))):
        lake.write_table("serving", "online_features", frame)
        predictor = Predictor(settings)
        predictor.load()
        assert predictor.readiness()[0]
        out = answer(predictor, ["T00003"])
        answers[name] = json.loads(out.answers["T00003"])
    assert answers["combined"]["feature_set_version"] == COMBINED
    assert answers["combined"]["prediction"] == pytest.approx(answers["technical"]["prediction"], rel=1e-12)
