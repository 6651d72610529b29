"""Refresh what the service reads whenever the champion model changes (the daily job refreshes the online features
every trading day; this job also rebuilds the Bento for the new champion)."""

import dagster as dg

from stockpred_core.io.model_registry import champion_version
from stockpred_resources.tracking import MLflowResource

serving_job = dg.define_asset_job("serving_job", selection=dg.AssetSelection.groups("serving"))


@dg.sensor(job=serving_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def champion_change_sensor(context: dg.SensorEvaluationContext, mlflow_resource: MLflowResource):
    """Request a serving refresh when the registry's `champion` alias points at a new version."""
    version = champion_version(mlflow_resource.client(), mlflow_resource.registered_model)
    if version is None:
        return dg.SkipReason(f"{mlflow_resource.registered_model} has no champion yet")
    current = str(version.version)
    if context.cursor == current:
        return dg.SkipReason(f"champion is still version {current}")
    context.update_cursor(current)
    return dg.RunRequest(run_key=f"champion-v{current}", tags={"champion_version": current})
