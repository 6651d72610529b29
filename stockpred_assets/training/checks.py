"""The promotion gate: the challenger becomes champion only if it is sane and beats the champion out of sample."""

import dagster as dg
import pandas as pd

from stockpred_assets.partitions import week_start, weeks
from stockpred_assets.training.data import load_training_set
from stockpred_core.io.model_registry import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    PARTITION_TAG,
    alias_version,
    load_version,
)
from stockpred_core.models.promotion import judge
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.tracking import MLflowResource

MARGIN = 0.005  # rank IC the challenger must add over the champion on the same rows


@dg.asset_check(asset="challenger_model", partitions_def=weeks, blocking=True)
def challenger_beats_champion(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, duckdb: DuckDBResource, mlflow_resource: MLflowResource
) -> dg.AssetCheckResult:
    """Finite, non-constant predictions covering the universe, and out-of-sample rank IC above the champion's by a
    margin on the challenger's test segment (which the champion may have trained on: the comparison favours it)."""
    client, name = mlflow_resource.client(), mlflow_resource.registered_model
    challenger = alias_version(client, name, CHALLENGER_ALIAS)
    if challenger is None or challenger.tags.get(PARTITION_TAG) != context.partition_key:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no challenger registered for this week"})
    params = client.get_run(challenger.run_id).data.params
    horizon = int(params["horizon"])
    test_start, test_end = (pd.Timestamp(d) for d in params["test"].split(".."))
    data = load_training_set(
        lake, duckdb, week_start(context), int(params["train_weeks"]), horizon, params.get("label", "return")
    )
    dates = data.X.index.get_level_values("date")
    rows = (dates >= test_start) & (dates <= test_end)
    X, returns = data.X[rows], data.returns[rows]
    champion = alias_version(client, name, CHAMPION_ALIAS)
    champion_pred = load_version(name, champion).predict(X) if champion is not None else None
    verdict = judge(load_version(name, challenger).predict(X), champion_pred, returns, X, horizon, MARGIN)
    return dg.AssetCheckResult(
        passed=verdict.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "challenger_version": str(challenger.version),
            "challenger_family": challenger.tags.get("model_family", "-"),
            "champion_version": str(champion.version) if champion is not None else "-",
            "challenger_rank_ic": verdict.challenger_rank_ic,
            "champion_rank_ic": verdict.champion_rank_ic if verdict.champion_rank_ic is not None else float("nan"),
            "margin": MARGIN,
            "test_segment": params["test"],
            "reasons": dg.MetadataValue.json(verdict.reasons),
        },
    )
