"""Weekly LightGBM model: trained on data before the week, tracked in MLflow, registered, promoted by a gate."""

from collections import Counter

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow.models import infer_signature

from stockpred_assets.core.adjustments import adjust
from stockpred_assets.core.calendar import lookback_start
from stockpred_assets.core.features import FEATURE_SET_VERSION, LOOKBACK_SESSIONS
from stockpred_assets.core.training import train_lgbm
from stockpred_assets.metadata import float_metadata, png_markdown
from stockpred_assets.partitions import week_start, weeks
from stockpred_resources.lake import LakeResource
from stockpred_resources.registry import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    PARTITION_TAG,
    alias_version,
    champion_version,
)
from stockpred_resources.tracking import MLflowResource

TRAIN_WEEKS = 104
# Upstream daily partitions a week's model reads: the TRAIN_WEEKS weeks before it, never the week itself.
HISTORY_MAPPING = dg.TimeWindowPartitionMapping(start_offset=-TRAIN_WEEKS, end_offset=-1)


class LgbmModelConfig(dg.Config):
    horizon: int = 5
    train_weeks: int = TRAIN_WEEKS
    seed: int = 0
    num_boost_round: int = 400
    n_trials: int = 50  # Optuna trials on the train/validation segments; 0 trains with the default parameters


def load_history(lake: LakeResource, cutoff: pd.Timestamp, train_weeks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and bars dated in [cutoff - train_weeks, cutoff): nothing on or after the cut-off is read."""
    start, end = cutoff - pd.Timedelta(weeks=train_weeks), cutoff - pd.Timedelta(days=1)
    table = lake.read_range("features", "features", start, end)
    bars_start = lookback_start(start, LOOKBACK_SESSIONS)
    bars = lake.read_range("validated", "bars", bars_start, end)
    if table.empty or bars.empty:
        raise dg.Failure(f"no features or bars before {cutoff:%Y-%m-%d}: materialize the daily assets for that range")
    # Labels are total returns: prices adjusted with the splits and dividends known before the cut-off.
    return table, adjust(bars, lake.read_range("validated", "events", bars_start, end))


def importance_figure(importance: pd.Series):
    fig, ax = plt.subplots(figsize=(7, 6))
    importance.head(20).iloc[::-1].plot.barh(ax=ax, title="Feature importance (total gain), top 20")
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


@dg.asset(
    partitions_def=weeks,
    deps=[
        dg.AssetDep("features", partition_mapping=HISTORY_MAPPING),
        dg.AssetDep("validated_bars", partition_mapping=HISTORY_MAPPING),
    ],
    kinds={"lightgbm", "mlflow"},
)
def lgbm_model(
    context: dg.AssetExecutionContext, config: LgbmModelConfig, lake: LakeResource, mlflow_resource: MLflowResource
) -> dg.MaterializeResult:
    """LightGBM forecaster of the forward return; logged and registered as a new model version."""
    cutoff = week_start(context)
    table, bars = load_history(lake, cutoff, config.train_weeks)
    result = train_lgbm(
        table,
        bars,
        config.horizon,
        seed=config.seed,
        num_boost_round=config.num_boost_round,
        n_trials=config.n_trials,
        storage=mlflow_resource.optuna_storage,
        study_name=f"lgbm-{context.partition_key}",
    )
    tags = {PARTITION_TAG: context.partition_key, "dagster_run_id": context.run.run_id, "model_family": "lightgbm"}
    with mlflow_resource.start_run(f"lgbm-{context.partition_key}", tags) as run:
        mlflow.log_params(
            {
                **config.model_dump(),
                "cutoff": f"{cutoff:%Y-%m-%d}",
                **result.segments,
                "feature_set_version": FEATURE_SET_VERSION,
                "data_fingerprint": result.fingerprint,
            }
        )
        mlflow.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
        mlflow.log_metrics({f"test_residual_{k}": v for k, v in result.residual_quantiles.items()})
        mlflow.log_metrics({f"rows_{k}": v for k, v in result.sizes.items()})
        mlflow.log_params({f"lgbm_{k}": v for k, v in result.params.items()})
        log_trials(result.trials)
        figure = importance_figure(result.importance)
        mlflow.log_figure(figure, "feature_importance.png")
        mlflow.log_dict(result.importance.round(6).to_dict(), "feature_importance.json")
        example = result.input_example.reset_index(drop=True)
        info = mlflow.lightgbm.log_model(
            result.model.booster,
            name="model",
            registered_model_name=mlflow_resource.registered_model,
            signature=infer_signature(example, result.model.booster.predict(example)),
            input_example=example,
        )
    version = str(info.registered_model_version)
    client = mlflow_resource.client()
    client.set_model_version_tag(mlflow_resource.registered_model, version, PARTITION_TAG, context.partition_key)
    # Every new model is the challenger; only the blocking gate lets champion_model move `champion` to it.
    client.set_registered_model_alias(mlflow_resource.registered_model, CHALLENGER_ALIAS, version)
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run.info.run_id,
            "model_version": version,
            "cutoff": f"{cutoff:%Y-%m-%d}",
            "segments": dg.MetadataValue.json(result.segments),
            "data_fingerprint": result.fingerprint,
            "optuna_trials": dg.MetadataValue.json(Counter(t["state"] for t in result.trials)),
            "feature_importance": png_markdown(figure),
            **float_metadata(
                {f"test_{k}": result.test_metrics[k] for k in ("ic", "rank_ic", "hit_rate", "mse_vs_naive", "sharpe")}
            ),
        }
    )


@dg.asset(partitions_def=weeks, deps=["lgbm_model"], kinds={"mlflow"})
def champion_model(context: dg.AssetExecutionContext, mlflow_resource: MLflowResource) -> dg.MaterializeResult:
    """Moves `champion` to this week's challenger (runs only after the blocking promotion gate passed)."""
    client = mlflow_resource.client()
    name = mlflow_resource.registered_model
    newest = alias_version(client, name, CHALLENGER_ALIAS)
    if newest is None or newest.tags.get(PARTITION_TAG) != context.partition_key:
        raise dg.Failure(
            f"the challenger of {name} is not week {context.partition_key}'s model: materialize lgbm_model"
        )
    previous = champion_version(client, name)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, newest.version)
    return dg.MaterializeResult(
        metadata={
            "registered_model": name,
            "champion_version": str(newest.version),
            "previous_champion": str(previous.version) if previous else "-",
            "mlflow_run_id": newest.run_id,
        }
    )
