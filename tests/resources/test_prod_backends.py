"""The production backends for real: the Dagster instance of deploy/ on PostgreSQL, MLflow on PostgreSQL (directly and
through the server the Kubernetes manifest starts) with artifacts on S3, Optuna on PostgreSQL, and the lake on the S3
protocol through s3fs. Every server is private to the test session (see conftest.py)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import mlflow
import numpy as np
import optuna
import pandas as pd
import psycopg2
import pytest
import redis
import s3fs
import yaml
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from mlflow.tracking import MlflowClient
from support import ROOT
from support.postgres import postgres_bindir
from support.service import free_port, wait_for_redis
from support.tls import REDIS_URL, deployed_redis, make_pki, tls_url

from stockpred_assets.ingestion.assets import raw_bars_simulated
from stockpred_assets.ingestion.automation import daily_data_schedule
from stockpred_core.io.lake import MissingPartitionsError
from stockpred_core.io.model_registry import CHAMPION_ALIAS, configure_mlflow, load_champion, log_forecaster
from stockpred_core.models.lgbm import LGBMForecaster
from stockpred_core.processes import wait_for_http
from stockpred_core.settings import load_settings
from stockpred_resources.environments import build_resources
from stockpred_resources.lake import DuckDBResource
from stockpred_resources.redis import RedisResource

DEPLOY = ROOT / "deploy"
DAY = "2024-03-01"  # a Friday session
NEW_YORK = ZoneInfo("America/New_York")


def prod_env(monkeypatch, tmp_path: Path, bucket: str, tracking_uri: str) -> None:
    """The variables a production pod gets (deploy/k8s/base/config.env and the Secrets), pointed at local servers."""
    monkeypatch.setenv("STOCKPRED_ENV", "prod")
    monkeypatch.setenv("STOCKPRED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCKPRED_LAKE_URL", f"s3://{bucket}/lake")
    monkeypatch.setenv("STOCKPRED_MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("STOCKPRED_UNIVERSE_SIZE", "5")


def psql(server, database: str, sql: str) -> list[tuple]:
    con = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=database)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


def test_the_lake_on_s3_replaces_partitions_and_duckdb_reads_it(s3_bucket, tmp_path, monkeypatch):
    prod_env(monkeypatch, tmp_path, s3_bucket, "http://mlflow:5000")
    with dg.build_resources({"lake": build_resources(load_settings())["lake"]}) as resources:
        lake = resources.lake.lake()  # the prod resource: dg.EnvVar("STOCKPRED_LAKE_URL") resolved as in a run
    assert lake.url == f"s3://{s3_bucket}/lake"
    days = pd.to_datetime(["2024-01-02", "2024-01-03"])
    frame = pd.DataFrame({"date": days.repeat(2), "ticker": ["A", "B"] * 2, "close": [1.0, 2.0, 3.0, 4.0]})
    lake.write_partitions("raw", "bars", frame, days)
    lake.write_partitions("raw", "bars", frame[frame["date"] == days[1]].assign(close=9.0), days[1:])  # replace
    got = lake.read_range("raw", "bars", "2024-01-01", "2024-01-31")
    assert len(got) == 4 and got.loc[got["date"] == days[1], "close"].tolist() == [9.0, 9.0]
    assert lake.partition_dates("raw", "bars") == list(days)
    with pytest.raises(MissingPartitionsError):
        lake.require_partitions("raw", "bars", pd.to_datetime(["2024-01-04"]))
    lake.write_table("serving", "online_features", frame.head(2))
    assert lake.read_table("serving", "online_features")["ticker"].tolist() == ["A", "B"]

    fresh = s3fs.S3FileSystem(skip_instance_cache=True)  # what another pod sees: objects, no staging leftovers
    keys = fresh.find(f"{s3_bucket}/lake")
    assert sorted(keys) == [
        f"{s3_bucket}/lake/raw/bars/date=2024-01-02/part-0.parquet",
        f"{s3_bucket}/lake/raw/bars/date=2024-01-03/part-0.parquet",
        f"{s3_bucket}/lake/serving/online_features/current/part-0.parquet",
    ]
    duckdb = DuckDBResource(database=str(tmp_path / "catalog.duckdb"))
    view = duckdb.register_view(lake, "raw", "bars")  # DuckDB reads S3 through s3fs: no httpfs download needed
    with duckdb.connect(lake) as con:
        assert con.execute(f"select count(*), max(close) from {view}").fetchone() == (4, 9.0)


@pytest.fixture
def dagster_home(postgres_server, tmp_path, monkeypatch) -> Path:
    """DAGSTER_HOME holding deploy/dagster/dagster.yaml as is, its DAGSTER_PG_* variables set to a fresh database."""
    postgres_server.database("dagster")
    for name, value in {
        "DAGSTER_PG_HOST": postgres_server.host,
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_USERNAME": postgres_server.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Property `ScheduleDefinition.environment_vars` is deprecated")
def test_dagster_on_postgres_stores_runs_events_schedules_and_partitions(
    dagster_home, postgres_server, s3_bucket, tmp_path, monkeypatch
):
    prod_env(monkeypatch, tmp_path, s3_bucket, "http://mlflow:5000")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        assert {"key": "dagster/backfill", "limit": 4} in queue.tag_concurrency_limits

        # The schedule as the daemon evaluates it, then its run, as production runs it: prod resources, lake on S3.
        tick_time = datetime(2024, 3, 1, 18, 30, tzinfo=NEW_YORK)
        request = daily_data_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time))
        assert request.partition_key == DAY
        resources = build_resources(load_settings())
        result = dg.materialize(
            [raw_bars_simulated],
            partition_key=request.partition_key,
            resources={key: resources[key] for key in ("simulated_provider", "lake")},
            instance=instance,
            tags={"dagster/schedule_name": "daily_data_schedule"},
        )
        assert result.success

        # Starting the schedule writes its state to the schedule storage.
        origin = LoadableTargetOrigin(module_name="stockpred_assets.definitions", working_directory=str(ROOT))
        with in_process_test_workspace(instance, origin) as workspace:
            location = workspace.get_code_location(workspace.code_location_names[0])
            schedule = next(iter(location.get_repositories().values())).get_schedule("daily_data_schedule")
            instance.start_schedule(schedule)

    # A second instance (new connections, as another pod would open) reads it all back from PostgreSQL.
    with dg.DagsterInstance.from_config(str(dagster_home)) as reader:
        runs = reader.get_runs()
        assert [(r.run_id, r.status) for r in runs] == [(result.run_id, dg.DagsterRunStatus.SUCCESS)]
        assert runs[0].tags["dagster/partition"] == DAY
        assert reader.get_materialized_partitions(dg.AssetKey("raw_bars_simulated")) == {DAY}
        events = {e.dagster_event.event_type for e in reader.all_logs(result.run_id) if e.dagster_event}
        kinds = dg.DagsterEventType
        assert {kinds.RUN_START, kinds.STEP_SUCCESS, kinds.ASSET_MATERIALIZATION, kinds.RUN_SUCCESS} <= events
        states = [s for s in reader.all_instigator_state() if s.name == "daily_data_schedule"]
        assert len(states) == 1 and states[0].status == InstigatorStatus.RUNNING

    assert psql(postgres_server, "dagster", "select status from runs") == [("SUCCESS",)]
    rows = psql(
        postgres_server,
        "dagster",
        "select partition from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    assert rows == [(DAY,)]
    assert psql(postgres_server, "dagster", "select job_type, status from jobs") == [("SCHEDULE", "RUNNING")]
    written = s3fs.S3FileSystem(skip_instance_cache=True).ls(f"{s3_bucket}/lake/raw/bars_simulated")
    assert [p.rsplit("/", 1)[-1] for p in written] == [f"date={DAY}"]


def tiny_forecaster() -> tuple[LGBMForecaster, pd.DataFrame]:
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2024-01-01", periods=40), [f"S{i:02d}" for i in range(5)]], names=["date", "ticker"]
    )
    X = pd.DataFrame(rng.normal(size=(len(index), 3)), index=index, columns=["rsi_14", "ret_5", "vol_20"])
    y = pd.Series(0.01 * X["ret_5"] + rng.normal(scale=0.001, size=len(X)), index=index)
    model = LGBMForecaster(num_boost_round=10, params={"num_threads": 1, "min_data_in_leaf": 5}).fit(X, y)
    return model, X


def register_champion(tracking_uri: str, artifact_location: str | None, name: str) -> tuple[str, pd.Series, str]:
    """Log a run with a model the way training does, register it, move the champion alias.

    Returns the run id, the model's predictions for the first rows, and the registered version."""
    experiment_id = configure_mlflow(tracking_uri, "stockpred", artifact_location)
    model, X = tiny_forecaster()
    with mlflow.start_run(experiment_id=experiment_id, run_name="lightgbm-2024-03-04") as run:
        mlflow.log_params({"horizon": 5, "feature_set_version": "test"})
        mlflow.log_metrics({"test_rank_ic": 0.05, "test_residual_q05": -0.02, "test_residual_q95": 0.02})
        info = log_forecaster(model, name, X.head(5))
    MlflowClient(tracking_uri).set_registered_model_alias(name, CHAMPION_ALIAS, info.registered_model_version)
    return run.info.run_id, model.predict(X.head(5)), str(info.registered_model_version)


@pytest.mark.slow
def test_mlflow_tracks_and_registers_on_postgres_with_artifacts_on_s3(postgres_server, s3_bucket):
    tracking_uri = postgres_server.database("mlflow")
    assert tracking_uri.startswith("postgresql+psycopg2://")
    run_id, predictions, version = register_champion(tracking_uri, f"s3://{s3_bucket}/mlartifacts", "stockpred-lgbm")

    champion = load_champion(tracking_uri, "stockpred-lgbm")  # what the prediction service does at start
    card = champion.card
    assert (card.version, card.run_id, card.horizon) == (version, run_id, 5)
    assert (card.residual_q05, card.residual_q95, card.feature_set_version) == (-0.02, 0.02, "test")
    tiny_X = tiny_forecaster()[1].head(5)
    pd.testing.assert_series_equal(champion.model.predict(tiny_X), predictions)

    assert psql(postgres_server, "mlflow", "select status from runs") == [("FINISHED",)]
    assert psql(postgres_server, "mlflow", "select name, version from model_versions") == [("stockpred-lgbm", 1)]
    artifacts = s3fs.S3FileSystem(skip_instance_cache=True).find(f"{s3_bucket}/mlartifacts")
    assert any(key.endswith("MLmodel") for key in artifacts)


def mlflow_server_args() -> list[str]:
    """The MLflow container's command line from deploy/k8s/base/mlflow/deployment.yaml."""
    manifest = yaml.safe_load((DEPLOY / "k8s" / "base" / "mlflow" / "deployment.yaml").read_text())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return [*container["command"], *container["args"]]


@pytest.fixture
def mlflow_server(postgres_server, s3_bucket, tmp_path, monkeypatch):
    """`mlflow server` started with the manifest's arguments: PostgreSQL backend, artifacts proxied to S3."""
    port = free_port()
    args = [a for a in mlflow_server_args() if not a.startswith(("--host", "--port", "--workers"))]
    assert args[:2] == ["mlflow", "server"]
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", postgres_server.database("mlflow_server"))
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", f"s3://{s3_bucket}/mlartifacts")
    log = (tmp_path / "mlflow.log").open("w")
    command = [Path(sys.executable).with_name("mlflow"), *args[1:], "--host", "127.0.0.1", "--port", str(port)]
    # its own process group: the server forks uvicorn workers, stopped with it
    proc = subprocess.Popen(
        [*command, "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_for_http(f"{url}/health", proc, timeout=120):
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"mlflow server did not start:\n{(tmp_path / 'mlflow.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


@pytest.mark.slow
def test_the_mlflow_server_of_the_manifest_serves_the_registry_and_proxies_s3(mlflow_server, s3_bucket):
    run_id, predictions, version = register_champion(mlflow_server, None, "stockpred-lgbm")
    champion = load_champion(mlflow_server, "stockpred-lgbm")  # the service's STOCKPRED_MLFLOW_TRACKING_URI
    assert (champion.card.version, champion.card.run_id) == (version, run_id)
    pd.testing.assert_series_equal(champion.model.predict(tiny_forecaster()[1].head(5)), predictions)
    keys = s3fs.S3FileSystem(skip_instance_cache=True).find(f"{s3_bucket}/mlartifacts")
    assert any(key.endswith("MLmodel") for key in keys)  # the server wrote the client's artifacts to S3

    # In the cluster clients call it by its Service name: the manifest allows those Host headers, and no other.
    api = f"{mlflow_server}/api/2.0/mlflow/experiments/search?max_results=1"
    for host, allowed in [("mlflow:5000", True), ("mlflow.stockpred.svc.cluster.local:5000", True), ("evil.io", False)]:
        assert (httpx.get(api, headers={"Host": host}, timeout=5).status_code == 200) is allowed, host


@pytest.mark.slow
def test_optuna_studies_resume_from_postgres(postgres_server):
    storage = postgres_server.database("optuna")  # STOCKPRED_OPTUNA_STORAGE in prod
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for _ in range(2):  # the second pass is a re-run of the week: it resumes the stored study
        study = optuna.create_study(study_name="lightgbm-2024-03-04", storage=storage, load_if_exists=True)
        study.optimize(lambda trial: (trial.suggest_float("x", -1, 1) - 0.3) ** 2, n_trials=3)
    assert len(study.trials) == 6
    assert psql(postgres_server, "optuna", "select count(*) from trials") == [(6,)]


def test_redis_of_the_manifest_needs_its_password_and_keeps_data_across_restarts(tmp_path):
    """The Redis StatefulSet's command and deploy/k8s/base/redis/redis.conf on a real redis-server (TLS, a CA made
    for the run), reached as the manifests configure the clients."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/ensure-test-services.sh")
    port, password = free_port(), "s3cret-hex"
    pki = make_pki(tmp_path / "tls")
    url = tls_url(REDIS_URL, password, port, pki / "ca.crt")  # how the manifests compose STOCKPRED_REDIS_URL
    proc = deployed_redis(tmp_path, port, password, pki)
    try:
        client = wait_for_redis(url, proc)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(url.replace(f":{password}@", "@")).get("x")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.flushall()
        RedisResource(url=url).client().set("stockpred:online:AAPL", "{}", ex=3600)
        client.shutdown()  # a pod restart
    finally:
        proc.wait(timeout=10)
    proc = deployed_redis(tmp_path, port, password, pki)
    try:
        assert wait_for_redis(url, proc).get("stockpred:online:AAPL") == b"{}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_backup_script_dumps_every_database_readably(postgres_server, tmp_path):
    """The dump step of the backup CronJob (deploy/k8s/base/backup/backup.sh) against a real PostgreSQL."""
    databases = ["dagster_backup", "mlflow_backup"]
    for name in databases:
        postgres_server.database(name)
        con = psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user="postgres", dbname=name)
        with con, con.cursor() as cur:
            cur.execute("create table runs (id int primary key, status text)")
            cur.execute("insert into runs values (1, 'SUCCESS')")
        con.close()
    bindir = postgres_bindir()
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "PGHOST": postgres_server.host,
        "PGPORT": str(postgres_server.port),
        "PGUSER": postgres_server.user,
        "DATABASES": " ".join(databases),
        "BACKUP_DIR": str(tmp_path),
    }
    script = DEPLOY / "k8s" / "base" / "backup" / "backup.sh"
    done = subprocess.run(["sh", str(script), "dump"], env=env, capture_output=True, text=True, check=True)
    assert [line.split(" (")[0] for line in done.stdout.splitlines()] == [f"dumped {db}" for db in databases]
    listing = subprocess.run(
        [bindir / "pg_restore", "--list", tmp_path / "dagster_backup.dump"], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public runs" in listing
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z\n", (tmp_path / ".stamp").read_text())
    failed = subprocess.run(["sh", str(script), "upload"], env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "BACKUP_URL" in failed.stderr  # no destination: the job fails loudly
