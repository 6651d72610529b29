"""A feature row's layout: a vector may leave out the Alpha158-like library (the layout's last columns), nothing else;
a model that takes the library then finds it missing, one that does not scores the row as if it were whole."""

import numpy as np
import pandas as pd
import pytest

from stockpred_core.features.catalog import FEATURE_COLUMNS, LIBRARY_COLUMNS, RAW_COLUMNS
from stockpred_core.io.model_card import ModelCard
from stockpred_core.models.baselines import LinearForecaster
from stockpred_core.serving.answers import score
from stockpred_core.serving.model import MissingFeatures, ServedModel
from stockpred_core.serving.rows import FeatureRow

LAYOUT = (*FEATURE_COLUMNS, *RAW_COLUMNS, *LIBRARY_COLUMNS)


def served(columns: list[str]) -> ServedModel:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, len(columns))), columns=columns)
    model = LinearForecaster().fit(X, X[columns[0]] * 0.01 + rng.normal(0, 0.01, 200))
    card = ModelCard(name="m", version="1", run_id="r", family="linear", horizon=1, label="return")
    return ServedModel(card, model)


def row(values: np.ndarray) -> FeatureRow:
    return FeatureRow("AAA", "2025-06-27", 10.0, "v", values, LAYOUT, "redis")


def test_a_vector_without_the_library_holds_the_layouts_first_columns():
    whole = np.random.default_rng(1).normal(size=len(LAYOUT))
    short = row(whole[: -len(LIBRARY_COLUMNS)].copy())
    assert short.columns == LAYOUT[: -len(LIBRARY_COLUMNS)]
    technical, library = served(FEATURE_COLUMNS), served([*FEATURE_COLUMNS, *LIBRARY_COLUMNS])
    assert score(technical, [short], explain=False) == score(technical, [row(whole)], explain=False)
    with pytest.raises(MissingFeatures, match=r"lacks: \['a158_kmid'.*only while STOCKPRED_FEATURE_FAMILIES"):
        library.index_for(short.columns)
    for wrong in (len(LAYOUT) - 1, len(LAYOUT) + 1, len(FEATURE_COLUMNS)):
        with pytest.raises(ValueError, match=r"holds .* values, its layout"):
            row(np.zeros(wrong))
