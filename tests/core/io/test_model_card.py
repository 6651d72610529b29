"""The model card: what training records about a registered version, read back by the one reader every user of the
registry goes through, on a real MLflow registry of this module's own."""

import math

import dagster as dg
import mlflow
import pandas as pd
import pytest
from support.service import fit, training_data

from stockpred_assets.evaluation.assets import BacktestConfig
from stockpred_assets.monitoring.reference import champion_facts
from stockpred_assets.partitions import week_start, weeks
from stockpred_assets.training.assets import LinearModelConfig, TrainConfig
from stockpred_assets.training.recording import record_training
from stockpred_core.data.simulation import simulate_bars
from stockpred_core.features.batch import compute_features
from stockpred_core.features.catalog import FEATURE_SET_VERSION
from stockpred_core.io.model_card import (
    CHAMPION_ALIAS,
    CHAMPION_FROM_TAG,
    FAMILY_TAG,
    ModelCard,
    ModelCardError,
    read_model_card,
)
from stockpred_core.io.model_registry import load_champion, log_forecaster
from stockpred_core.models.training import TrainingSpec, labelled_set, train_model
from stockpred_core.monitoring.performance import Baseline
from stockpred_resources.tracking import MLflowResource

WEEK = "2023-04-03"
NAME = "card"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> MLflowResource:
    root = tmp_path_factory.mktemp("model_card")
    return MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=str(root / "art"), registered_model=NAME
    )


@pytest.fixture(scope="module")
def trained(tracking):
    """A linear model trained and recorded by the training assets' own `record_training` (horizon 3, rank label:
    not the defaults, so reading them back proves they were recorded)."""
    bars = simulate_bars(3, 6, "2021-01-04", "2023-03-31")
    config = LinearModelConfig(horizon=3, label="rank", train_weeks=52)
    result = train_model(
        "linear", labelled_set(compute_features(bars), bars, config.horizon, config.label),
        TrainingSpec(config.horizon, config.label, n_folds=2), {"alpha": config.alpha},
    )  # fmt: skip

    @dg.asset(partitions_def=weeks, name="linear_model")
    def recorded(context: dg.AssetExecutionContext, config: LinearModelConfig, mlflow_resource: MLflowResource):
        return record_training(context, config, week_start(context), result, mlflow_resource)

    outcome = dg.materialize(
        [recorded],
        partition_key=WEEK,
        resources={"mlflow_resource": tracking},
        run_config=dg.RunConfig({"linear_model": config}),
    )
    meta = outcome.asset_materializations_for_node("linear_model")[0].metadata
    return result, meta["model_version"].value, meta["mlflow_run_id"].value


def _old_version(tracking: MLflowResource, params: dict, run_tags: dict | None = None) -> str:
    """A version registered the way older code did: fewer params, no version tags."""
    with mlflow.start_run(experiment_id=tracking.setup(), tags=run_tags or {}):
        mlflow.log_params(params)
        info = log_forecaster(fit("linear"), NAME, training_data(rows=5)[0])
    return str(info.registered_model_version)


def test_what_training_records_reads_back_as_the_card(tracking, trained):
    result, version, run_id = trained
    card = read_model_card(tracking.client(), NAME, version)
    assert (card.name, card.version, card.run_id) == (NAME, version, run_id)
    assert (card.family, card.horizon, card.label) == ("linear", 3, "rank")
    assert card.defaulted == frozenset()
    assert card.feature_set_version == FEATURE_SET_VERSION
    assert card.feature_columns == tuple(result.model.feature_names)
    assert (card.week, card.cutoff, card.train_weeks) == (WEEK, pd.Timestamp(WEEK), 52)
    spans = {name: tuple(pd.Timestamp(d) for d in span.split("..")) for name, span in result.segments.items()}
    assert dict(card.segments) == spans and card.test_window == spans["test"]
    assert card.training_window == (spans["train"][0], spans["test"][1]) and card.training_window[1] < card.cutoff
    assert card.test_metric("rank_ic") == pytest.approx(result.test_metrics["rank_ic"])
    assert card.cv_metric("rank_ic") == pytest.approx(result.cv_metrics["rank_ic"])
    assert (card.residual_q05, card.residual_q95) == pytest.approx(
        (result.residual_quantiles["q05"], result.residual_quantiles["q95"])
    )
    assert math.isnan(card.test_metric("never_logged")) and card.champion_from is None
    assert card.require("horizon", "label", "family", "training_window", "train_weeks", "feature_columns") is card


def test_an_alias_reads_the_version_holding_it_and_none_before(tracking, trained):
    _, version, _ = trained
    client = tracking.client()
    assert read_model_card(client, NAME, CHAMPION_ALIAS) is None
    client.set_registered_model_alias(NAME, CHAMPION_ALIAS, version)
    client.set_model_version_tag(NAME, version, CHAMPION_FROM_TAG, "2023-04-10")
    try:
        card = read_model_card(client, NAME, CHAMPION_ALIAS)
        assert card.version == version and CHAMPION_ALIAS in card.aliases
        assert card.champion_from == pd.Timestamp("2023-04-10")
        facts = champion_facts(tracking)  # monitoring's baseline comes from the same card
        assert facts.card == card and facts.reference_table == f"reference_v{version}"
        metrics = [card.test_metric(name) for name in ("rank_ic", "ic", "mse_vs_naive")]
        assert facts.baseline == Baseline(*metrics, horizon=3, label="rank")
    finally:
        client.delete_registered_model_alias(NAME, CHAMPION_ALIAS)


def test_an_old_version_reads_with_the_documented_defaults(tracking):
    """Registered before the family tag, horizon, label and training window were recorded."""
    version = _old_version(tracking, {"feature_set_version": "old"})
    card = read_model_card(tracking.client(), NAME, version)
    assert card.defaulted == {"family", "horizon", "label"}
    default = ModelCard("-", "-", "-")
    assert (card.family, card.horizon, card.label) == (default.family, default.horizon, default.label)
    assert card.feature_set_version == "old" and card.feature_columns is None and card.cutoff is None
    assert card.training_window is None and card.test_window is None and card.train_weeks is None
    assert (card.residual_q05, card.residual_q95) == (0.0, 0.0)  # the service serves a zero-width interval


def test_the_defaults_of_training_evaluation_monitoring_and_old_versions_agree(tracking):
    version = _old_version(tracking, {})
    card = read_model_card(tracking.client(), NAME, version)
    defaults = [card, TrainConfig(), TrainingSpec(), BacktestConfig(), Baseline(0.0)]
    assert len({d.horizon for d in defaults}) == 1 and len({d.label for d in defaults}) == 1


def test_the_family_of_a_version_without_the_version_tag_comes_from_its_run(tracking):
    """What the service's registered versions look like (tests/support/service.py)."""
    version = _old_version(tracking, {"horizon": 7, "label": "return"}, run_tags={FAMILY_TAG: "momentum"})
    card = read_model_card(tracking.client(), NAME, version)
    assert (card.family, card.horizon, card.label, card.defaulted) == ("momentum", 7, "return", frozenset())


def test_the_service_loads_the_champion_through_the_card(tracking):
    version = _old_version(tracking, {"horizon": 2, "feature_set_version": "svc"}, run_tags={FAMILY_TAG: "linear"})
    client = tracking.client()
    client.set_registered_model_alias(NAME, CHAMPION_ALIAS, version)
    try:
        loaded = load_champion(tracking.tracking_uri, NAME)
        assert loaded.card == read_model_card(client, NAME, version)
        X = training_data(rows=20)[0]
        pd.testing.assert_series_equal(loaded.model.predict(X), fit("linear").predict(X))
    finally:
        client.delete_registered_model_alias(NAME, CHAMPION_ALIAS)


def test_a_missing_required_field_is_a_clear_error_naming_the_version(tracking):
    version = _old_version(tracking, {"horizon": 5})
    client = tracking.client()
    with pytest.raises(ModelCardError, match=rf"model {NAME} v{version} \(run \w+\) records no training_window"):
        read_model_card(client, NAME, version, require=("training_window",))
    with pytest.raises(ModelCardError, match=rf"v{version} .* records no label \(param 'label'\)"):
        read_model_card(client, NAME, version, require=("horizon", "label"))  # a defaulted field is not recorded
    with pytest.raises(ValueError, match="no optional field 'horizn'"):
        read_model_card(client, NAME, version, require=("horizn",))
    with pytest.raises(ModelCardError, match=f"model {NAME} has no version 999"):
        read_model_card(client, NAME, 999)


def test_an_unreadable_field_is_a_clear_error_naming_the_version(tracking):
    client = tracking.client()
    for params, field in [({"horizon": "five"}, "horizon"), ({"label": "sign"}, "label"), ({"test": "x"}, "test")]:
        version = _old_version(tracking, params)
        with pytest.raises(ModelCardError, match=rf"v{version} \(run \w+\) records an unreadable {field}"):
            read_model_card(client, NAME, version)


def test_monitoring_refuses_a_champion_without_a_training_window(tracking):
    version = _old_version(tracking, {"horizon": 5})
    client = tracking.client()
    client.set_registered_model_alias(NAME, CHAMPION_ALIAS, version)
    try:
        with pytest.raises(
            dg.Failure, match=rf"v{version} .* records no training_window \(params 'train' and 'test'\)"
        ):
            champion_facts(tracking)
    finally:
        client.delete_registered_model_alias(NAME, CHAMPION_ALIAS)
