"""MLflow setup, logging a forecaster as a registered version and loading one back, shared by the training assets and
the prediction service (no Dagster). What a version records about itself is read by `model_card` alone."""

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

from stockpred_core.io.model_card import CHAMPION_ALIAS, ModelCard, alias_version, read_model_card
from stockpred_core.models.families import load_model
from stockpred_core.models.forecaster import Forecaster
from stockpred_core.models.lgbm import LGBMForecaster


def configure_mlflow(
    tracking_uri: str, experiment: str, artifact_location: str | None = None, registry_uri: str | None = None
) -> str:
    """Point the mlflow module at the tracking server and return the experiment id, creating it if needed."""
    use_registry(tracking_uri, registry_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(experiment, artifact_location=artifact_location)
    except MlflowException:  # created concurrently by another process
        return mlflow.get_experiment_by_name(experiment).experiment_id


def use_registry(tracking_uri: str, registry_uri: str | None = None) -> MlflowClient:
    """Point the mlflow module at a tracking server and registry (what `load_version` reads) and return a client."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


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
class LoadedVersion:
    """A registered version: what it records about itself, and the forecaster."""

    card: ModelCard
    model: Forecaster


def load_version(model_name: str, version) -> Forecaster:
    """A registered model version (its number, or anything with a `.version`: a ModelVersion, a ModelCard) as a
    core forecaster (the mlflow module must point at the registry: `use_registry`)."""
    uri = f"models:/{model_name}/{getattr(version, 'version', version)}"
    flavors = mlflow.models.get_model_info(uri).flavors
    if "lightgbm" in flavors:  # versions logged before every family went through ForecasterModel
        return LGBMForecaster(booster=mlflow.lightgbm.load_model(uri))
    # The directory Forecaster.save wrote, read directly: the logged pyfunc code never runs, so versions logged
    # while that code lived at another module path (stockpred_resources.pyfunc_model) load the same way.
    saved = flavors["python_function"]["artifacts"]["forecaster"]["path"]
    return load_model(Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{saved}")))


def load_champion(tracking_uri: str, model_name: str, registry_uri: str | None = None) -> LoadedVersion | None:
    """The champion's card and forecaster; None when no champion exists yet."""
    card = read_model_card(use_registry(tracking_uri, registry_uri), model_name, CHAMPION_ALIAS)
    return None if card is None else LoadedVersion(card, load_version(model_name, card.version))
