"""Weekly models: one asset per family trained on data before the week, the challenger picked among them, and the
champion moved only after the blocking gate (checks.py) passed."""

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_assets.metadata import frame_table
from stockpred_assets.partitions import week_start, weeks
from stockpred_assets.training.data import load_training_set, recipe_families
from stockpred_assets.training.recording import record_training
from stockpred_core.dataset.labels import DEFAULT_HORIZON, DEFAULT_LABEL
from stockpred_core.io.model_card import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    CHAMPION_FROM_TAG,
    FAMILY_TAG,
    PARTITION_TAG,
    ModelCard,
    alias_version,
    card_of,
    read_model_card,
)
from stockpred_core.models.families import torch_available
from stockpred_core.models.training import TrainingSpec, train_model
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.tracking import MLflowResource

TRAIN_WEEKS = 104
# Upstream daily partitions a week's model reads: the TRAIN_WEEKS weeks before it, never the week itself.
HISTORY_MAPPING = dg.TimeWindowPartitionMapping(start_offset=-TRAIN_WEEKS, end_offset=-1)
HISTORY = [
    dg.AssetDep("features", partition_mapping=HISTORY_MAPPING),
    dg.AssetDep("validated_bars", partition_mapping=HISTORY_MAPPING),
]
# mlp_model needs PyTorch, an optional extra: without it the code location leaves the asset out (definitions.py)
MODEL_ASSETS = ("lgbm_model", *(("mlp_model",) if torch_available() else ()), "linear_model", "momentum_model")


class TrainConfig(dg.Config):
    horizon: int = DEFAULT_HORIZON  # label: forward return over this many sessions
    label: str = DEFAULT_LABEL  # "return", or "rank": the cross-sectional rank of the forward return
    train_weeks: int = TRAIN_WEEKS
    embargo: int = 5  # sessions left out between segments on top of the horizon-long purge
    n_folds: int = 3  # walk-forward folds inside the train segment (per-fold metrics; pick the challenger)
    seed: int = 0
    feature_families: list[str] | None = Field(
        default=None,
        description='Feature sets the model takes: "technical" (always in) and any of "alpha158" (the Alpha158-like '
        'library of the feature table), "news", "social", "filings", "macro" (the alt_features table); unset: '
        "STOCKPRED_FEATURE_FAMILIES",
    )


class LgbmModelConfig(TrainConfig):
    num_boost_round: int = 400
    n_trials: int = 50  # Optuna trials on the train/validation segments; 0 trains with the default parameters


class MlpModelConfig(TrainConfig):
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 32])
    epochs: int = 20
    batch_size: int = 512
    # the training batch on a GPU, which has room for many more rows per step (None: batch_size); it changes the fit
    cuda_batch_size: int | None = None
    lr: float = 1e-3
    device: str = "auto"  # CUDA when torch sees a GPU


class LinearModelConfig(TrainConfig):
    alpha: float = 1.0


class MomentumModelConfig(TrainConfig):
    column: str = "ret_20"


def train_and_record(
    context: dg.AssetExecutionContext, family: str, config: TrainConfig, params: dict, lake: LakeResource,
    duckdb: DuckDBResource, mlflow_resource: MLflowResource, n_trials: int = 0,
) -> dg.MaterializeResult:  # fmt: skip
    cutoff = week_start(context)
    families = recipe_families(config.feature_families)
    data = load_training_set(lake, duckdb, cutoff, config.train_weeks, config.horizon, config.label, families)
    spec = TrainingSpec(config.horizon, config.label, config.embargo, config.seed, n_folds=config.n_folds)
    try:
        result = train_model(
            family, data, spec, params, n_trials=n_trials, storage=mlflow_resource.optuna_storage,
            # one study per week and recipe, so a re-run resumes it and another recipe does not
            study_name=f"{family}-{context.partition_key}-h{config.horizon}-{config.label}-s{config.seed}"
            + "".join(f"-{f}" for f in families),
        )  # fmt: skip
    except ValueError as exc:  # the window cannot be split or fitted: say so, nothing was logged
        raise dg.Failure(f"{family} for week {context.partition_key}: {exc}") from exc
    return record_training(context, config, cutoff, result, mlflow_resource, families, data.dropped)


@dg.asset(partitions_def=weeks, deps=HISTORY, kinds={"lightgbm", "optuna", "mlflow"})
def lgbm_model(
    context: dg.AssetExecutionContext, config: LgbmModelConfig, lake: LakeResource, duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:  # fmt: skip
    """LightGBM regression tuned by an Optuna study (TPE, median pruning); a new registered model version."""
    params = {"num_boost_round": config.num_boost_round}
    return train_and_record(context, "lightgbm", config, params, lake, duckdb, mlflow_resource, config.n_trials)


@dg.asset(partitions_def=weeks, deps=HISTORY, kinds={"pytorch", "mlflow"})
def mlp_model(
    context: dg.AssetExecutionContext, config: MlpModelConfig, lake: LakeResource, duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:  # fmt: skip
    """PyTorch MLP (CUDA with mixed precision when present, CPU otherwise; early stopping; seeded)."""
    params = {
        "hidden_sizes": tuple(config.hidden_sizes),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "cuda_batch_size": config.cuda_batch_size,
        "lr": config.lr,
        "device": config.device,
    }
    return train_and_record(context, "torch_mlp", config, params, lake, duckdb, mlflow_resource)


@dg.asset(partitions_def=weeks, deps=HISTORY, kinds={"numpy", "mlflow"})
def linear_model(
    context: dg.AssetExecutionContext, config: LinearModelConfig, lake: LakeResource, duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:  # fmt: skip
    """Baseline: ridge regression on the standardized features."""
    return train_and_record(context, "linear", config, {"alpha": config.alpha}, lake, duckdb, mlflow_resource)


@dg.asset(partitions_def=weeks, deps=HISTORY, kinds={"numpy", "mlflow"})
def momentum_model(
    context: dg.AssetExecutionContext, config: MomentumModelConfig, lake: LakeResource, duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:  # fmt: skip
    """Naive baseline: the forecast is a fitted multiple of one momentum feature (20-session return by default)."""
    return train_and_record(context, "momentum", config, {"column": config.column}, lake, duckdb, mlflow_resource)


def week_versions(mlflow_resource: MLflowResource, week: str) -> dict[str, ModelCard]:
    """This week's newest registered version of each family, as model cards."""
    client, name = mlflow_resource.client(), mlflow_resource.registered_model
    newest: dict[str, ModelCard] = {}
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(PARTITION_TAG) != week or FAMILY_TAG not in version.tags:
            continue
        card = card_of(client, version)
        if card.family not in newest or int(card.version) > int(newest[card.family].version):
            newest[card.family] = card
    return newest


@dg.asset(partitions_def=weeks, deps=list(MODEL_ASSETS), kinds={"mlflow"})
def challenger_model(context: dg.AssetExecutionContext, mlflow_resource: MLflowResource) -> dg.MaterializeResult:
    """Picks this week's best family by walk-forward rank IC inside the training segment (the test segment stays
    for the gate) and gives its version the `challenger` alias."""
    client, name = mlflow_resource.client(), mlflow_resource.registered_model
    cards = week_versions(mlflow_resource, context.partition_key)
    if not cards:
        raise dg.Failure(f"no model of week {context.partition_key} in {name}: materialize the model assets")
    rows = [
        {
            "family": family,
            "version": card.version,
            "cv_rank_ic": card.cv_metric("rank_ic"),
            "test_rank_ic": card.test_metric("rank_ic"),
            "test_hit_rate": card.test_metric("hit_rate"),
        }
        for family, card in cards.items()
    ]
    table = pd.DataFrame(rows).sort_values("cv_rank_ic", ascending=False, na_position="last")
    best = table.iloc[0]
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, best["version"])
    return dg.MaterializeResult(
        metadata={
            "challenger_family": best["family"],
            "challenger_version": best["version"],
            "cv_rank_ic": float(best["cv_rank_ic"]),
            "families": frame_table(table),
        }
    )


@dg.asset(partitions_def=weeks, deps=["challenger_model"], kinds={"mlflow"})
def champion_model(context: dg.AssetExecutionContext, mlflow_resource: MLflowResource) -> dg.MaterializeResult:
    """Moves `champion` to this week's challenger (runs only after the blocking promotion gate passed)."""
    client = mlflow_resource.client()
    name = mlflow_resource.registered_model
    newest = read_model_card(client, name, CHALLENGER_ALIAS)
    if newest is None or newest.week != context.partition_key:
        raise dg.Failure(
            f"the challenger of {name} is not week {context.partition_key}'s model: materialize challenger_model"
        )
    previous = alias_version(client, name, CHAMPION_ALIAS)  # its number only: its card need not be readable
    client.set_registered_model_alias(name, CHAMPION_ALIAS, newest.version)
    client.set_model_version_tag(name, newest.version, CHAMPION_FROM_TAG, context.partition_key)
    return dg.MaterializeResult(
        metadata={
            "registered_model": name,
            "champion_version": newest.version,
            "champion_family": newest.family,
            "champion_from": context.partition_key,
            "previous_champion": str(previous.version) if previous else "-",
            "mlflow_run_id": newest.run_id,
        }
    )
