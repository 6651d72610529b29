"""Registered versions load as core forecasters whatever module path their logged pyfunc code names."""

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from support.service import fit, training_data

from stockpred_core.io.model_registry import configure_mlflow, load_version, log_forecaster

LOGGED_IMPORT = "from stockpred_core.models.families import load_model"
# Module paths load_model has had: versions logged while it lived there carry code importing it from there.
MOVED_MODULES = ("stockpred_assets.core.models", "stockpred_core.models.forecasters")


@pytest.fixture
def tracking(tmp_path):
    """A registry of this test's own (tracking and registry URIs both: other tests point the module elsewhere)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_experiment(experiment_id=configure_mlflow(uri, "registry", artifact_location=str(tmp_path / "art")))
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_version_loads_as_the_forecaster_that_was_logged(tracking):
    model, (X, _) = fit("linear"), training_data(200)
    with mlflow.start_run():
        log_forecaster(model, "stockpred", X.head(3))
    [version] = tracking.search_model_versions("name = 'stockpred'")
    assert (load_version("stockpred", version).predict(X) == model.predict(X)).all()


@pytest.mark.parametrize("moved", MOVED_MODULES)
def test_a_version_whose_logged_code_imports_a_moved_module_still_loads(tracking, tmp_path, moved):
    """Versions logged before a move carry code running e.g. `from stockpred_assets.core.models import ...`."""
    model, (X, _) = fit("linear"), training_data(200)
    with mlflow.start_run():
        log_forecaster(model, "stockpred", X.head(3))
    [logged] = list((tmp_path / "art").rglob("pyfunc.py"))
    assert LOGGED_IMPORT in logged.read_text()
    logged.write_text(logged.read_text().replace(LOGGED_IMPORT, f"from {moved} import load_model"))
    [version] = tracking.search_model_versions("name = 'stockpred'")
    with pytest.raises(MlflowException, match=r"No module named 'stockpred_(assets\.core|core\.models\.forecasters)'"):
        mlflow.pyfunc.load_model(f"models:/stockpred/{version.version}")  # what load_version did before
    assert (load_version("stockpred", version).predict(X) == model.predict(X)).all()


def test_a_version_logged_in_the_lightgbm_flavour_still_loads(tracking):
    """Versions registered before every family went through the forecaster pyfunc carry MLflow's LightGBM flavour."""
    model, (X, _) = fit("lightgbm"), training_data(200)
    with mlflow.start_run():
        mlflow.lightgbm.log_model(model.booster, name="model", registered_model_name="stockpred")
    [version] = tracking.search_model_versions("name = 'stockpred'")
    loaded = load_version("stockpred", version)
    assert type(loaded) is type(model)
    pd.testing.assert_series_equal(loaded.predict(X), model.predict(X))
