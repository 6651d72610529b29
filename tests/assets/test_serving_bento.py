"""The `bento` asset refuses to build without a champion. (Its build, labels and contents: the end-to-end serving
job in test_end_to_end.py, so the Bento is built once per test session.)"""

import dagster as dg

from stockpred_assets.serving.assets import bento
from stockpred_core.settings import load_settings
from stockpred_resources.tracking import MLflowResource


def test_bento_asset_fails_clearly_without_a_champion(tmp_path):
    settings = load_settings({"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path / "data")})
    tracking = MLflowResource(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_location=settings.mlflow_artifact_location,
        registered_model=settings.registered_model,
    )
    failed = dg.materialize([bento], resources={"mlflow_resource": tracking}, raise_on_error=False)
    assert not failed.success  # no champion yet: nothing to build for
    [failure] = [e for e in failed.all_events if e.is_step_failure]
    assert "champion" in failure.step_failure_data.error.message
