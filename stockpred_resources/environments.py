"""Resources per environment: the one function that maps settings to Dagster resources."""

from __future__ import annotations

from typing import Any

import dagster as dg

from stockpred_resources.cache import RedisResource
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.providers import SimulatedProvider
from stockpred_resources.settings import Settings
from stockpred_resources.tracking import MLflowResource


def build_resources(settings: Settings) -> dict[str, Any]:
    """local/ci get concrete values from the settings; prod reads every endpoint from the environment at run time."""
    if settings.is_prod:
        return {
            "lake": LakeResource(url=dg.EnvVar("STOCKPRED_LAKE_URL")),
            "duckdb": DuckDBResource(database=settings.duckdb_path),
            "mlflow_resource": MLflowResource(
                tracking_uri=dg.EnvVar("STOCKPRED_MLFLOW_TRACKING_URI"),
                experiment=settings.mlflow_experiment,
                artifact_location=settings.mlflow_artifact_location,
                registered_model=settings.registered_model,
            ),
            "redis": RedisResource(url=dg.EnvVar("STOCKPRED_REDIS_URL")),
            "simulated_provider": SimulatedProvider(seed=settings.simulated_seed, universe_size=settings.universe_size),
        }
    return {
        "lake": LakeResource(url=settings.lake_url),
        "duckdb": DuckDBResource(database=settings.duckdb_path),
        "mlflow_resource": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            artifact_location=settings.mlflow_artifact_location,
            registered_model=settings.registered_model,
        ),
        "redis": RedisResource(url=settings.redis_url),
        "simulated_provider": SimulatedProvider(seed=settings.simulated_seed, universe_size=settings.universe_size),
    }
