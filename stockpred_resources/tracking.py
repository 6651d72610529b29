"""MLflow: tracking server, experiment and model registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import dagster as dg
import mlflow
from mlflow.tracking import MlflowClient
from pydantic import Field

from stockpred_core.io.model_registry import configure_mlflow


class MLflowResource(dg.ConfigurableResource):
    """Where runs are tracked and models registered; `setup()` points the mlflow module at it."""

    tracking_uri: str = Field(description="sqlite:///... locally, the MLflow server URL in prod")
    registry_uri: str | None = Field(default=None, description="Model registry URI (defaults to the tracking URI)")
    experiment: str = "stockpred"
    artifact_location: str | None = Field(
        default=None, description="Artifact root for a new experiment (file:// or s3://)"
    )
    registered_model: str = "stockpred"
    optuna_storage: str | None = Field(default=None, description="Optuna study storage (sqlite:// or postgresql://)")
    ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description="The MLflow UI people open: run links and plots (`make dev` starts it)",
    )

    def setup(self) -> str:
        """Configure the mlflow module and return the experiment id (created on first use)."""
        return configure_mlflow(self.tracking_uri, self.experiment, self.artifact_location, self.registry_uri)

    def client(self) -> MlflowClient:
        self.setup()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri)

    @contextmanager
    def start_run(self, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
        """An MLflow run for the block; if the block raises, the run and its nested runs are deleted rather than
        left half-logged (the error goes on to Dagster)."""
        experiment_id = self.setup()
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
        try:
            yield run
        except BaseException:
            mlflow.end_run("FAILED")
            client, run_id = self.client(), run.info.run_id
            for child in client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'"):
                client.delete_run(child.info.run_id)
            client.delete_run(run_id)
            raise
        mlflow.end_run()

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def image(self, run_id: str, artifact_path: str, title: str) -> dg.MetadataValue:
        """A PNG artifact of a run as Markdown that the Dagster UI draws inline, served by the MLflow UI (short
        Markdown renders in place; an embedded PNG would hide behind a "[Show Markdown]" link)."""
        url = f"{self.ui_url.rstrip('/')}/get-artifact?{urlencode({'path': artifact_path, 'run_uuid': run_id})}"
        return dg.MetadataValue.md(f"![{title}: served by the MLflow UI at {self.ui_url} (make dev starts it)]({url})")
