"""The promotion gate: the challenger becomes champion only if it is sane and beats the champion out of sample."""

import dagster as dg
import numpy as np

from stockpred_assets.partitions import week_start, weeks
from stockpred_assets.training.data import load_training_set
from stockpred_core.dataset.training_set import families_of
from stockpred_core.io.model_card import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    ModelCardError,
    alias_version,
    read_model_card,
)
from stockpred_core.io.model_registry import load_version
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
    challenger = read_model_card(client, name, CHALLENGER_ALIAS)
    if challenger is None or challenger.week != context.partition_key:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no challenger registered for this week"})
    try:
        challenger.require("horizon", "train_weeks", "test_window")
    except ModelCardError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"reason": str(exc)})
    test_start, test_end = challenger.test_window
    champion = alias_version(client, name, CHAMPION_ALIAS)  # its forecasts only: its card need not be readable
    models = [load_version(name, challenger), *([load_version(name, champion)] if champion is not None else [])]
    # the rows of the challenger's test segment with every column either model takes
    families = families_of(c for model in models for c in model.feature_names)
    try:
        data = load_training_set(
            lake, duckdb, week_start(context), challenger.train_weeks, challenger.horizon, challenger.label, families
        )
    except dg.Failure as exc:
        return dg.AssetCheckResult(passed=False, metadata={"reason": exc.description or str(exc)})
    dates = data.X.index.get_level_values("date")
    rows = (dates >= test_start) & (dates <= test_end)
    X, returns = data.X[rows], data.returns[rows]
    # an alternative column without a value in this window was left out of X: to a model it is missing (NaN)
    X = X.assign(**{c: np.nan for model in models for c in model.feature_names if c not in X.columns})
    champion_pred = models[1].predict(X) if champion is not None else None
    verdict = judge(models[0].predict(X), champion_pred, returns, X, challenger.horizon, MARGIN)
    return dg.AssetCheckResult(
        passed=verdict.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "challenger_version": challenger.version,
            "challenger_family": challenger.family,
            "champion_version": str(champion.version) if champion is not None else "-",
            "challenger_rank_ic": verdict.challenger_rank_ic,
            "champion_rank_ic": verdict.champion_rank_ic if verdict.champion_rank_ic is not None else float("nan"),
            "margin": MARGIN,
            "test_segment": f"{test_start:%Y-%m-%d}..{test_end:%Y-%m-%d}",
            "reasons": dg.MetadataValue.json(verdict.reasons),
        },
    )
