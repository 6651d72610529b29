"""One MLflow run per trained model: params, per-fold and test metrics, importance, the model; then registration."""

from collections.abc import Sequence

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import pandas as pd

from stockpred_assets.metadata import float_metadata, frame_table
from stockpred_assets.training.data import alternative_only
from stockpred_core.features.alternative_catalog import TECHNICAL, feature_set_version
from stockpred_core.io.model_card import CV_PREFIX, RESIDUAL_PREFIX, TEST_PREFIX, card_params, card_tags
from stockpred_core.io.model_registry import log_forecaster
from stockpred_core.models.training import SIGNAL_METRICS, TrainingResult
from stockpred_resources.tracking import MLflowResource

IMPORTANCE_PNG = "feature_importance.png"


def importance_figure(importance: pd.Series, family: str):
    fig, ax = plt.subplots(figsize=(6.5, 6))
    measure = "total gain" if family == "lightgbm" else "mean |occlusion effect|"
    importance.head(20).iloc[::-1].plot.barh(ax=ax, title=f"{family}: feature importance ({measure}), top 20")
    fig.tight_layout()
    plt.close(fig)
    return fig


def log_trials(trials: list[dict]) -> None:
    """Each Optuna trial as a nested MLflow run (logged after the study, so a failed training leaves no half run)."""
    parent = mlflow.active_run()
    for trial in trials:
        with mlflow.start_run(
            run_name=f"trial-{trial['number']}",
            nested=True,
            experiment_id=parent.info.experiment_id,  # else MLflow files them under the default experiment
            tags={"optuna_state": trial["state"]},
        ):
            mlflow.log_params(trial["params"])
            if trial["value"] is not None:
                mlflow.log_metric("valid_rank_ic", trial["value"])


def log_folds(folds: list[dict]) -> None:
    """Per-fold metrics twice: as `fold_<metric>` series (step = fold number, charted by MLflow) and as a table."""
    for fold in folds:
        mlflow.log_metrics({f"fold_{name}": fold[name] for name in SIGNAL_METRICS}, step=fold["fold"])
    mlflow.log_table(pd.DataFrame(folds), "fold_metrics.json")


def fold_table(folds: list[dict]) -> dg.MetadataValue:
    shown = ["fold", "train_end", "test", "rows", "rank_ic", "ic", "hit_rate", "sharpe"]
    return frame_table(pd.DataFrame(folds)[shown])


def record_training(
    context: dg.AssetExecutionContext, config: dg.Config, cutoff: pd.Timestamp, result: TrainingResult,
    mlflow_resource: MLflowResource, families: Sequence[str] = (), dropped: Sequence[str] = (),
) -> dg.MaterializeResult:  # fmt: skip
    """Log `result` as an MLflow run, register the model as a new version tagged with the week and family (what
    `read_model_card` reads back: the card's params, tags and metrics). `families`: the families it was
    trained on beside the technical set (the alternative ones name its feature set version); `dropped`: their columns
    left out for holding no value."""
    week, family = context.partition_key, result.family
    card = card_tags(week, family)
    version_of_features = feature_set_version(alternative_only(families))
    recipe = {**config.model_dump(), "feature_families": ",".join([TECHNICAL, *families])}
    with mlflow_resource.start_run(f"{family}-{week}", {**card, "dagster_run_id": context.run.run_id}) as run:
        card_facts = card_params(
            horizon=config.horizon, label=config.label, cutoff=cutoff, segments=result.segments,
            train_weeks=config.train_weeks, feature_set_version=version_of_features,
            feature_columns=result.model.feature_names,
        )  # fmt: skip
        mlflow.log_params({**recipe, **card_facts, "data_fingerprint": result.fingerprint})
        if dropped:
            mlflow.log_param("alt_columns_without_values", ",".join(dropped))
        mlflow.log_params({f"model_{k}": v for k, v in result.params.items()})
        mlflow.log_metrics({f"{TEST_PREFIX}{k}": v for k, v in result.test_metrics.items()})
        mlflow.log_metrics({f"{CV_PREFIX}{k}": v for k, v in result.cv_metrics.items()})
        mlflow.log_metrics({f"{RESIDUAL_PREFIX}{k}": v for k, v in result.residual_quantiles.items()})
        mlflow.log_metrics({f"rows_{k}": v for k, v in result.sizes.items()})
        log_folds(result.fold_metrics)
        log_trials(result.trials)
        figure = importance_figure(result.importance, family)
        mlflow.log_figure(figure, IMPORTANCE_PNG)
        mlflow.log_dict(result.importance.round(8).to_dict(), "feature_importance.json")
        info = log_forecaster(result.model, mlflow_resource.registered_model, result.input_example)
    version = str(info.registered_model_version)
    client = mlflow_resource.client()
    for key, value in card.items():
        client.set_model_version_tag(mlflow_resource.registered_model, version, key, value)
    trial_states = pd.Series([t["state"] for t in result.trials], dtype=str).value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "mlflow_run": dg.MetadataValue.url(mlflow_resource.run_url(run.info.experiment_id, run.info.run_id)),
            "mlflow_run_id": run.info.run_id,
            "model_version": version,
            "model_family": family,
            "feature_set_version": version_of_features,
            "feature_families": dg.MetadataValue.json([TECHNICAL, *families]),
            "feature_columns": dg.MetadataValue.int(len(result.model.feature_names)),
            **({"alt_columns_without_values": dg.MetadataValue.json(list(dropped))} if dropped else {}),
            "cutoff": f"{cutoff:%Y-%m-%d}",
            "segments": dg.MetadataValue.json(result.segments),
            "data_fingerprint": result.fingerprint,
            "fold_metrics": fold_table(result.fold_metrics),
            "feature_importance": mlflow_resource.image(run.info.run_id, IMPORTANCE_PNG, "feature importance"),
            **({"optuna_trials": dg.MetadataValue.json(trial_states)} if result.trials else {}),
            **float_metadata({f"cv_{k}": result.cv_metrics[k] for k in ("rank_ic", "ic")}),
            **float_metadata(
                {f"test_{k}": result.test_metrics[k] for k in ("ic", "rank_ic", "hit_rate", "mse_vs_naive", "sharpe")}
            ),
        }
    )
