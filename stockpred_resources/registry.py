"""MLflow setup and the champion model, shared by the training assets and the prediction service (no Dagster)."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from stockpred_assets.core.models import LGBMForecaster

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
PARTITION_TAG = "dagster_partition"


def configure_mlflow(
    tracking_uri: str, experiment: str, artifact_location: str | None = None, registry_uri: str | None = None
) -> str:
    """Point the mlflow module at the tracking server and return the experiment id, creating it if needed."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(experiment, artifact_location=artifact_location)
    except MlflowException:  # created concurrently by another process
        return mlflow.get_experiment_by_name(experiment).experiment_id


def alias_version(client: MlflowClient, model_name: str, alias: str):
    """The registry's model version holding `alias`, or None."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def champion_version(client: MlflowClient, model_name: str):
    """The registry's model version holding the champion alias, or None."""
    return alias_version(client, model_name, CHAMPION_ALIAS)


@dataclass(frozen=True)
class ChampionModel:
    name: str
    version: str
    run_id: str
    model: LGBMForecaster
    horizon: int
    residual_q05: float
    residual_q95: float
    feature_set_version: str | None  # the feature registry the model was trained on


def load_version(model_name: str, version) -> LGBMForecaster:
    """A registered model version's booster as a forecaster (the mlflow module must point at the registry)."""
    return LGBMForecaster(booster=mlflow.lightgbm.load_model(f"models:/{model_name}/{version.version}"))


def load_champion(tracking_uri: str, model_name: str, registry_uri: str | None = None) -> ChampionModel | None:
    """Load the champion's booster and the run facts the service reports; None when no champion exists yet."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
    version = champion_version(client, model_name)
    if version is None:
        return None
    run = client.get_run(version.run_id)
    return ChampionModel(
        name=model_name,
        version=str(version.version),
        run_id=version.run_id,
        model=load_version(model_name, version),
        horizon=int(run.data.params.get("horizon", 5)),
        residual_q05=float(run.data.metrics.get("test_residual_q05", 0.0)),
        residual_q95=float(run.data.metrics.get("test_residual_q95", 0.0)),
        feature_set_version=run.data.params.get("feature_set_version"),
    )
