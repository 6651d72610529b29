"""The `bento` asset builds the Bento for the registry's champion (offline) and records its tag."""

import dagster as dg
import pytest
import yaml
from service_support import fit, register

from stockpred_assets.serving.assets import bento
from stockpred_core.settings import load_settings
from stockpred_resources.tracking import MLflowResource

pytestmark = pytest.mark.slow


def test_bento_asset_builds_for_the_champion_and_records_the_tag(tmp_path):
    settings = load_settings({"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(tmp_path / "data")})
    tracking = MLflowResource(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_location=settings.mlflow_artifact_location,
        registered_model=settings.registered_model,
    )
    failed = dg.materialize([bento], resources={"mlflow_resource": tracking}, raise_on_error=False)
    assert not failed.success  # no champion yet: nothing to build for

    version = register(settings, fit("linear"))
    home = tmp_path / "bentoml"
    result = dg.materialize(
        [bento],
        resources={"mlflow_resource": tracking},
        run_config={"ops": {"bento": {"config": {"bentoml_home": str(home)}}}},
    )
    meta = {k: v.value for k, v in result.asset_materializations_for_node("bento")[0].metadata.items()}
    assert meta["champion_version"] == version and meta["bento_tag"].startswith("stockpred:")
    manifest = yaml.safe_load((home / "bentos" / "stockpred" / meta["bento_tag"].split(":")[1] / "bento.yaml").open())
    assert manifest["labels"]["champion_version"] == version
    assert manifest["services"][0]["config"]["resources"]["gpu"] == 1
    assert meta["path"] == str(home / "bentos" / "stockpred" / meta["bento_tag"].split(":")[1])
