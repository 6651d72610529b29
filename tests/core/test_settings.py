import os

import pytest
from support import ROOT

from stockpred_core.settings import SettingsError, load_calendar_settings, load_settings


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
    assert s.data_dir == ROOT / "data"


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


def test_values_are_parsed_as_the_variables_document():
    s = load_settings(
        {
            "STOCKPRED_PROVIDERS": "Yahoo, files",
            "STOCKPRED_UNIVERSE": "aapl, msft,",
            "STOCKPRED_DRIFT_ALERT_MAX_AGE_DAYS": "None",
            "STOCKPRED_SHADOW_SCORING": " Yes\n",
            "STOCKPRED_SERVICE_WORKERS": "4",
            "STOCKPRED_REDIS_URL": "",  # empty is unset
        }
    )
    assert (s.providers, s.universe, s.drift_alert_max_age_days, s.redis_url) == (
        ("yahoo", "files"),
        ("AAPL", "MSFT"),
        None,
        None,
    )
    assert (s.service.shadow_scoring, s.service.workers, s.service.rate_per_second) == (True, 4, 20.0)


def test_each_bad_variable_is_named_once_and_secrets_are_not_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({"STOCKPRED_ENV": "staging", "STOCKPRED_REDIS_URL": "redis://:hunter2@cache:6379/0"})
    # the defaults computed from STOCKPRED_ENV are not reported as further errors
    assert str(caught.value) == "STOCKPRED_ENV must be one of local, ci, prod, got 'staging'"
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"STOCKPRED_SEED": "x", "STOCKPRED_PROVIDERS": "yahoo,bogus", "STOCKPRED_API_KEYS": "a:reader:f00"}
        )
    assert str(caught.value) == (
        "STOCKPRED_SEED must be an integer, got 'x'; "
        "STOCKPRED_PROVIDERS takes a comma list of simulated, yahoo, alphavantage, files, got ['bogus']"
    )
    with pytest.raises(SettingsError, match=r"STOCKPRED_SERVICE_WORKERS must be an integer, got '2\.5'"):
        load_settings({"STOCKPRED_SERVICE_WORKERS": "2.5"})


def test_the_calendar_starts_at_the_configured_first_session():
    """STOCKPRED_FIRST_SESSION moves the calendar, the day partitions and the first week (read at import, so in a
    fresh interpreter); a bad value is refused with the variable's name."""
    import subprocess
    import sys

    probe = (
        "from stockpred_core.data import calendar; from stockpred_assets import partitions as p; "
        "print(calendar.FIRST_SESSION, calendar.sessions('1990-01-01', '2013-12-31')[0].date(), "
        "p.trading_days.start.date(), p.weeks.start.date())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKPRED_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "STOCKPRED_FIRST_SESSION": "2009-01-02"}, cwd=ROOT,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.split() == ["2009-01-02", "2009-01-02", "2009-01-02", "2009-01-05"]
    default = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert default.stdout.split() == ["2013-01-02", "2013-01-02", "2013-01-02", "2013-01-07"]
    with pytest.raises(SettingsError, match="STOCKPRED_FIRST_SESSION must be 1990-01-02 or later"):
        load_calendar_settings({"STOCKPRED_FIRST_SESSION": "1985-01-02"})
    with pytest.raises(SettingsError, match="STOCKPRED_FIRST_SESSION"):
        load_calendar_settings({"STOCKPRED_FIRST_SESSION": "next tuesday"})
