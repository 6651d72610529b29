"""The Dagster instance of deploy/dagster checked offline: it is valid, its run launcher creates valid hardened run
jobs, and the Helm values agree with it (the instance config that tests/resources/test_prod_backends.py runs on
PostgreSQL)."""

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import ConfigurableClassData
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id
from k8s_manifests import DEPLOY, K8S_VERSIONS, assert_pod_is_hardened, env_of
from support import ROOT


@pytest.fixture
def prod_instance_env(monkeypatch):
    for name, value in {
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_PG_PASSWORD": "from-a-secret",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_K8S_JOB_NAMESPACE": "stockpred",
    }.items():
        monkeypatch.setenv(name, value)


def test_the_production_instance_is_valid_and_the_top_level_one_stays_local(prod_instance_env):
    config, _ = dagster_instance_config(str(DEPLOY / "dagster"))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_launcher"]["class"] == "K8sRunLauncher" and config["run_launcher"]["module"] == "dagster_k8s"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator" and config["run_retries"]["enabled"]
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert not {"storage", "run_launcher", "run_storage", "event_log_storage"} & set(local)  # embedded SQLite


def k8s_run_launcher(tmp_path) -> K8sRunLauncher:
    """The run launcher of deploy/dagster/dagster.yaml, pointed at a kubeconfig instead of the in-cluster account."""
    section = yaml.safe_load((DEPLOY / "dagster" / "dagster.yaml").read_text())["run_launcher"]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    config = {**section["config"], "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    return ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(config)).rehydrate(K8sRunLauncher)


def test_the_run_launcher_creates_valid_hardened_run_jobs(prod_instance_env, tmp_path):
    launcher = k8s_run_launcher(tmp_path)
    run = dg.DagsterRun(job_name="daily_data_job", run_id="0" * 32, tags={"dagster/partition": "2024-03-01"})
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(job_image="registry.example.com/stockpred/dagster:0.1.0", run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=get_job_name_from_run_id(run.run_id),
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
    spec = manifest["spec"]["template"]["spec"]
    assert_pod_is_hardened("run worker", spec)
    (worker,) = spec["containers"]
    assert {"configMapRef": {"name": "stockpred-config"}} in worker["envFrom"]
    assert {"secretRef": {"name": "stockpred-runtime"}} in worker["envFrom"]
    assert env_of(worker)["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "dagster-postgresql-secret"
    assert manifest["spec"]["template"]["metadata"]["labels"]["stockpred.io/role"] == "pipeline"
    assert context.namespace == "stockpred"  # DAGSTER_K8S_JOB_NAMESPACE


CHART_TOP_LEVEL_KEYS = {  # the official chart's values schema (helm/dagster/schema/.../values.py)
    "global", "nameOverride", "fullnameOverride", "rbacEnabled", "dagsterWebserver", "dagster-user-deployments",
    "postgresql", "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis", "flower",
    "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon",
    "busybox", "migrate", "telemetry", "serviceAccount", "retention", "additionalInstanceConfig", "concurrency",
}  # fmt: skip


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camelize(value):
    """Dagster's snake_case Kubernetes config as the chart's camelCase (label keys have no underscores)."""
    if isinstance(value, dict):
        return {camel(k): camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


def test_helm_values_match_the_production_instance(prod_instance_env):
    values = yaml.safe_load((DEPLOY / "dagster" / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "dagster" / "dagster.yaml").read_text())
    assert set(values) <= CHART_TOP_LEVEL_KEYS

    pg, db = values["postgresql"], instance["storage"]["postgres"]["postgres_db"]
    assert pg["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert (pg["postgresqlScheme"], pg["postgresqlHost"]) == (db["scheme"], "postgres")
    assert values["global"]["postgresqlSecretName"] == instance["run_launcher"]["config"]["postgres_password_secret"]

    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["--module-name", "stockpred_assets.definitions"] and code["port"] == 3030
    assert code["envSecrets"] == [{"name": "stockpred-runtime"}] and code["resources"]["limits"]
    assert values["dagster-user-deployments"]["enabled"] and code["includeConfigInLaunchedRuns"]["enabled"]

    launcher, k8s = instance["run_launcher"]["config"], values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["env_secrets"]
    assert [c["name"] for c in k8s["envConfigMaps"]] == launcher["env_config_maps"]
    for key in ("labels", "resources", "security_context", "volumes", "volume_mounts", "run_k8s_config"):
        assert k8s[camel(key)] == camelize(launcher[key]), key

    daemon = values["dagsterDaemon"]
    queue, coordinator = daemon["runCoordinator"], instance["run_coordinator"]["config"]
    assert queue["enabled"] and queue["type"] == instance["run_coordinator"]["class"]
    config = queue["config"]["queuedRunCoordinator"]
    assert config["maxConcurrentRuns"] == coordinator["max_concurrent_runs"]
    assert config["tagConcurrencyLimits"] == coordinator["tag_concurrency_limits"]
    assert daemon["runRetries"] == camelize(instance["run_retries"])
    assert daemon["runMonitoring"] == camelize(instance["run_monitoring"])
    assert (daemon["schedules"], daemon["sensors"]) == (camelize(instance["schedules"]), camelize(instance["sensors"]))
    assert values["retention"] == {"enabled": True, **camelize(instance["retention"])}
    assert values["additionalInstanceConfig"]["local_artifact_storage"] == instance["local_artifact_storage"]
    assert values["computeLogManager"]["type"] == instance["compute_logs"]["class"]
