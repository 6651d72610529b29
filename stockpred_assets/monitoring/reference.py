"""The champion a drift report compares against, and its reference: fitted once per champion, cached in the lake.

The reference is the champion's training window as its MLflow run recorded it (the `train` segment's first date to
the `test` segment's last: every row the run fitted, early-stopped and tested on, all before its cut-off), re-read
from the lake's features, with the champion's own predictions on those rows. Its fixed bins, KS grid and ordinary
ranges are stored under `monitoring/reference_v<version>`, so a daily report reads a few kilobytes instead of two
years of features.
"""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from stockpred_core.dataset.training_set import feature_matrix
from stockpred_core.features.batch import FEATURE_COLUMNS
from stockpred_core.io.model_registry import champion_version, load_version
from stockpred_core.monitoring import drift
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.tracking import MLflowResource

LAYER = "monitoring"


@dataclass(frozen=True)
class ChampionFacts:
    version: str
    family: str
    run_id: str
    cutoff: str
    window: tuple[pd.Timestamp, pd.Timestamp]  # the training window: first..last date the run used
    feature_set_version: str | None
    baseline: drift.Baseline  # its test-segment figures

    @property
    def reference_table(self) -> str:
        return f"reference_v{self.version}"


def _span(text: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    first, last = text.split("..")
    return pd.Timestamp(first), pd.Timestamp(last)


def champion_facts(mlflow_resource: MLflowResource) -> ChampionFacts | None:
    """The registry's champion and what its MLflow run recorded; None when there is no champion yet."""
    client = mlflow_resource.client()
    version = champion_version(client, mlflow_resource.registered_model)
    if version is None:
        return None
    run = client.get_run(version.run_id)
    params, metrics = run.data.params, run.data.metrics
    if "train" not in params or "test" not in params:
        raise dg.Failure(
            f"champion v{version.version} (run {version.run_id}) records no train/test segments: it was not logged "
            "by the training assets, so its training window is unknown"
        )
    nan = float("nan")
    return ChampionFacts(
        version=str(version.version),
        family=version.tags.get("model_family", run.data.tags.get("model_family", "-")),
        run_id=version.run_id,
        cutoff=params.get("cutoff", "-"),
        window=(_span(params["train"])[0], _span(params["test"])[1]),
        feature_set_version=params.get("feature_set_version"),
        baseline=drift.Baseline(
            rank_ic=metrics.get("test_rank_ic", nan),
            ic=metrics.get("test_ic", nan),
            mse_vs_naive=metrics.get("test_mse_vs_naive", nan),
            horizon=int(params.get("horizon", 5)),
            label=params.get("label", "return"),
        ),
    )


def load_reference(
    lake: LakeResource,
    duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
    champion: ChampionFacts,
    window: int,
    log=None,
) -> drift.DriftReference:
    """The champion's cached reference, fitted now when missing or measured for another window length."""
    try:
        cached = drift.DriftReference.from_frame(lake.read_table(LAYER, champion.reference_table))
        if cached.window == window:
            return cached
    except FileNotFoundError:
        pass
    first, last = champion.window
    features = duckdb.read_window(lake.lake(), "features", "features", first, last)
    if features.empty:
        raise dg.Failure(
            f"no features in champion v{champion.version}'s training window {first:%Y-%m-%d}..{last:%Y-%m-%d}: "
            "materialize `features` for it (the reference is fitted from them once, then cached)"
        )
    X = feature_matrix(features)  # the rows a model sees (warm-up rows left out)
    mlflow_resource.setup()
    model = load_version(mlflow_resource.registered_model, _version(mlflow_resource, champion.version))
    frame = X.assign(**{drift.PREDICTION: model.predict(X).to_numpy()}).reset_index()
    reference = drift.build_reference(frame, [*FEATURE_COLUMNS, drift.PREDICTION], window)
    lake.write_table(LAYER, champion.reference_table, reference.to_frame())
    if log is not None:
        log.info(
            f"fitted the drift reference of champion v{champion.version} on {reference.sessions} sessions "
            f"{reference.start:%Y-%m-%d}..{reference.end:%Y-%m-%d} ({len(frame)} rows)"
        )
    return reference


def _version(mlflow_resource: MLflowResource, number: str):
    return mlflow_resource.client().get_model_version(mlflow_resource.registered_model, number)
