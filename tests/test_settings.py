from pathlib import Path

import pytest

from stockpred_core.settings import SettingsError, load_settings


def test_local_defaults_need_no_server(tmp_path):
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert s.env == "local"
    assert s.lake_url == str(tmp_path / "lake")
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.mlflow_artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert s.duckdb_path == str(tmp_path / "catalog.duckdb")
    assert s.redis_url is None


def test_default_data_dir_is_the_ignored_project_folder():
    s = load_settings({})
    assert s.data_dir == Path(__file__).resolve().parents[1] / "data"


def test_overrides_and_unknown_environment():
    s = load_settings({"STOCKPRED_ENV": "ci", "STOCKPRED_REDIS_URL": "redis://x:1/0", "STOCKPRED_UNIVERSE_SIZE": "12"})
    assert (s.env, s.redis_url, s.universe_size) == ("ci", "redis://x:1/0", 12)
    with pytest.raises(SettingsError, match="STOCKPRED_ENV must be one of"):
        load_settings({"STOCKPRED_ENV": "staging"})
    with pytest.raises(SettingsError, match="STOCKPRED_UNIVERSE_SIZE must be an integer"):
        load_settings({"STOCKPRED_UNIVERSE_SIZE": "many"})


def test_prod_requires_its_endpoints():
    with pytest.raises(SettingsError, match="STOCKPRED_LAKE_URL, STOCKPRED_MLFLOW_TRACKING_URI"):
        load_settings({"STOCKPRED_ENV": "prod"})
    s = load_settings(
        {
            "STOCKPRED_ENV": "prod",
            "STOCKPRED_LAKE_URL": "s3://bucket/lake",
            "STOCKPRED_MLFLOW_TRACKING_URI": "http://mlflow:5000",
        }
    )
    assert s.is_prod and s.mlflow_artifact_location is None
