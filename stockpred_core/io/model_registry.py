"""MLflow setup and the champion model, shared by the training assets and the prediction service (no Dagster)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from stockpred_core.models.forecasters import Forecaster, LGBMForecaster, load_model

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


# What a logged model needs at load time (listed, so MLflow need not start a process to infer them).
MODEL_REQUIREMENTS = ("lightgbm", "torch", "pandas", "numpy", "mlflow")


def log_forecaster(model: Forecaster, registered_model_name: str, input_example: pd.DataFrame):
    """Log a fitted forecaster into the active run (artifact path `model`) and register it as a new version."""
    example = input_example.reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc.py")),
            artifacts={"forecaster": str(model.save(f"{tmp}/forecaster"))},
            registered_model_name=registered_model_name,
            signature=infer_signature(example, model.predict(example).to_numpy()),
            input_example=example,
            pip_requirements=[f"{name}=={package_version(name)}" for name in MODEL_REQUIREMENTS],
        )


@dataclass(frozen=True)
class ChampionModel:
    name: str
    version: str
    run_id: str
    model: Forecaster
    horizon: int
    residual_q05: float
    residual_q95: float
    feature_set_version: str | None  # the feature registry the model was trained on
    family: str = "lightgbm"
    label: str = "return"  # "return": predictions are forward returns; "rank": cross-sectional scores


def load_version(model_name: str, version) -> Forecaster:
    """A registered model version as a core forecaster (the mlflow module must point at the registry)."""
    uri = f"models:/{model_name}/{version.version}"
    flavors = mlflow.models.get_model_info(uri).flavors
    if "lightgbm" in flavors:  # versions logged before every family went through ForecasterModel
        return LGBMForecaster(booster=mlflow.lightgbm.load_model(uri))
    # The directory Forecaster.save wrote, read directly: the logged pyfunc code never runs, so versions logged
    # while that code lived at another module path (stockpred_resources.pyfunc_model) load the same way.
    saved = flavors["python_function"]["artifacts"]["forecaster"]["path"]
    return load_model(Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{saved}")))


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
        family=run.data.tags.get("model_family", "lightgbm"),
        label=run.data.params.get("label", "return"),
    )
