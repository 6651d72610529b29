"""The promotion gate: a model version becomes champion only if it beats the naive forecast out of sample."""

import dagster as dg

from stockpred_assets.partitions import weeks
from stockpred_resources.registry import PARTITION_TAG
from stockpred_resources.tracking import MLflowResource

MIN_TEST_RANK_IC = 0.0
MAX_TEST_MSE_VS_NAIVE = 1.05  # forward returns are mostly noise: allow 5% above the zero forecast's error


@dg.asset_check(asset="lgbm_model", partitions_def=weeks, blocking=True)
def lgbm_model_beats_naive(
    context: dg.AssetCheckExecutionContext, mlflow_resource: MLflowResource
) -> dg.AssetCheckResult:
    """Test-segment rank IC above zero and squared error not materially worse than predicting no change."""
    client = mlflow_resource.client()
    versions = client.search_model_versions(
        f"name = '{mlflow_resource.registered_model}' and tags.{PARTITION_TAG} = '{context.partition_key}'"
    )
    if not versions:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no registered model version for this week"})
    newest = max(versions, key=lambda v: int(v.version))
    metrics = client.get_run(newest.run_id).data.metrics
    rank_ic, mse_ratio = metrics.get("test_rank_ic", float("nan")), metrics.get("test_mse_vs_naive", float("nan"))
    return dg.AssetCheckResult(
        passed=bool(rank_ic > MIN_TEST_RANK_IC and mse_ratio < MAX_TEST_MSE_VS_NAIVE),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "model_version": str(newest.version),
            "test_rank_ic": float(rank_ic),
            "test_mse_vs_naive": float(mse_ratio),
            "min_rank_ic": MIN_TEST_RANK_IC,
            "max_mse_vs_naive": MAX_TEST_MSE_VS_NAIVE,
        },
    )
