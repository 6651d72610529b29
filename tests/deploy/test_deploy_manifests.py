"""deploy/ checked offline: every kustomize overlay renders and passes kubernetes-validate --strict, the monitoring
objects (CRDs) are checked against the objects they watch, the security basics hold on every pod, and the Dagster
Helm values agree with the production instance config that tests/resources/test_prod_backends.py runs on PostgreSQL."""

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

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
from support import ROOT

from stockpred_core.settings import environment_variables

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = {"staging": 3, "production": 10}  # overlay -> prediction replicas
# The oldest minor version the big managed offerings still support, and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
MONITORING_API = "monitoring.coreos.com/v1"
WORKLOADS = {"Deployment", "StatefulSet", "CronJob", "Job"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|CREDENTIAL", re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]*:[^/\s@]+@")  # user:password@host


def kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@cache
def render(path: str) -> tuple[dict, ...]:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kubectl nor kustomize is installed: the overlays cannot be rendered here")
    out = subprocess.run([*command, str(K8S / path)], capture_output=True, text=True, check=True).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def find(docs, kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc: dict) -> dict:
    template = doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else doc["spec"]["template"]
    return template["metadata"]["labels"]


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(params=sorted(OVERLAYS))
def overlay(request) -> str:
    return request.param


@pytest.fixture
def docs(overlay) -> tuple[dict, ...]:
    return render(f"overlays/{overlay}")


# -- Kubernetes schemas ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["base", "overlays/staging", "overlays/production"])
def test_renders_and_passes_kubernetes_validate_strict(path):
    docs = render(path)
    core = [d for d in docs if d["apiVersion"] != MONITORING_API]
    assert len(core) > 25
    for version in K8S_VERSIONS:
        for doc in core:  # a core kind without a schema raises SchemaNotFoundError here (the CLI only warns)
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path_in_doc = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {path_in_doc}: {exc.message}")
    assert {d["kind"] for d in docs if d["apiVersion"] == MONITORING_API} == (
        set() if path == "base" else {"ServiceMonitor", "PrometheusRule"}
    )


def test_the_cli_passes_on_a_rendered_overlay(tmp_path):
    """The command of the issue itself, once: kubernetes-validate --strict on kubectl kustomize's output."""
    rendered = tmp_path / "production.yaml"
    rendered.write_text(yaml.safe_dump_all(render("overlays/production")))
    cli = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run([cli, "--strict", "-k", K8S_VERSIONS[-1], str(rendered)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARN")]
    assert all("ServiceMonitor" in w or "PrometheusRule" in w for w in warnings), warnings  # CRDs: checked below


# -- what each part must have ----------------------------------------------------------------------------------------


def test_overlay_replicas_and_autoscaling(overlay, docs):
    replicas = OVERLAYS[overlay]
    assert find(docs, "Deployment", "stockpred-bento")["spec"]["replicas"] == replicas
    hpa = find(docs, "HorizontalPodAutoscaler", "stockpred-bento")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (replicas, 20)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stockpred-bento"}
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    namespace = "stockpred" if overlay == "production" else f"stockpred-{overlay}"
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {namespace}


def test_base_autoscales_from_3_to_20():
    hpa = find(render("base"), "HorizontalPodAutoscaler", "stockpred-bento")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)


def test_bento_runs_on_a_gpu_with_probes_behind_tls(docs):
    deployment = find(docs, "Deployment", "stockpred-bento")
    spec = pod_spec(deployment)
    (bento,) = spec["containers"]
    assert bento["resources"]["requests"]["nvidia.com/gpu"] == bento["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert (
        spec["nodeSelector"]
        and {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    )
    assert bento["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert bento["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert bento["startupProbe"]["httpGet"]["path"] == "/livez"
    assert bento["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]

    labels = pod_labels(deployment)
    pdb = find(docs, "PodDisruptionBudget", "stockpred-bento")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items() and pdb["maxUnavailable"] == 1
    service = find(docs, "Service", "stockpred-bento")["spec"]
    assert service["selector"].items() <= labels.items() and service["ports"][0]["targetPort"] == "http"

    ingress = find(docs, "Ingress", "stockpred-bento")["spec"]
    hosts = {rule["host"] for rule in ingress["rules"]}
    assert hosts <= {h for tls in ingress["tls"] for h in tls["hosts"]} and all(t["secretName"] for t in ingress["tls"])
    paths = {p["path"]: p["backend"]["service"] for rule in ingress["rules"] for p in rule["http"]["paths"]}
    assert set(paths) == {"/predict", "/predict_batch"}  # /metrics, /livez, /readyz stay inside the cluster
    assert all(backend == {"name": "stockpred-bento", "port": {"name": "http"}} for backend in paths.values())


def test_redis_has_a_password_and_persistence(docs):
    redis_set = find(docs, "StatefulSet", "redis")
    redis = pod_spec(redis_set)["containers"][0]
    assert "--requirepass" in redis["command"] and "$(REDIS_PASSWORD)" in redis["command"]
    assert env_of(redis)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "stockpred-redis",
        "key": "password",
    }
    assert redis_set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in redis["volumeMounts"]
    config = pod_spec(redis_set)["volumes"][0]["configMap"]["name"]  # generated, with a content hash suffix
    assert (
        config.startswith("redis-config-") and "appendonly yes" in find(docs, "ConfigMap", config)["data"]["redis.conf"]
    )


def test_mlflow_server_uses_postgres_and_s3_from_config_and_secrets(docs):
    mlflow = pod_spec(find(docs, "Deployment", "mlflow"))["containers"][0]
    env = env_of(mlflow)
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "stockpred-mlflow-db"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["valueFrom"]["configMapKeyRef"]["name"] == "stockpred-config"
    assert "--serve-artifacts" in mlflow["args"] and "--port=5000" in mlflow["args"]
    config = find(docs, "ConfigMap", "stockpred-config")["data"]
    assert config["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert config["STOCKPRED_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert config["STOCKPRED_ENV"] == "prod" and config["STOCKPRED_LAKE_URL"].startswith("s3://")


def test_the_config_map_only_holds_settings_the_code_reads():
    config = dict(line.split("=", 1) for line in (K8S / "base" / "config.env").read_text().split())
    unknown = [k for k in config if k.startswith("STOCKPRED_") and k not in environment_variables()]
    assert not unknown, f"config.env sets variables settings.py does not read: {unknown}"
    instance = (DEPLOY / "dagster" / "dagster.yaml").read_text()
    assert all(f"env: {k}" in instance for k in config if k.startswith("DAGSTER_"))


def test_backup_runs_daily_to_object_storage_with_a_retention(overlay, docs):
    cronjob = find(docs, "CronJob", "postgres-backup")
    minute, hour, *days = cronjob["spec"]["schedule"].split()
    assert days == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_spec(cronjob)
    assert [c["name"] for c in containers(spec)] == ["dump", "upload"]
    upload = env_of(spec["containers"][0])
    assert upload["BACKUP_URL"]["value"].startswith("s3://")
    assert int(upload["RETENTION_DAYS"]["value"]) == {"staging": 7, "production": 30}[overlay]
    assert env_of(spec["initContainers"][0])["DATABASES"]["value"].split() == ["dagster", "mlflow", "optuna"]
    script = find(docs, "ConfigMap", spec["volumes"][-1]["configMap"]["name"])["data"]["backup.sh"]
    assert "pg_dump --format=custom" in script and "RETENTION_DAYS" in script


# -- security basics -------------------------------------------------------------------------------------------------


def test_no_secret_is_defined_or_written_in_plain_text(docs):
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created out of band (deploy/README.md)"
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for key, value in doc.get("data", {}).items():
                assert not SECRET_NAME.search(key), f"{doc['metadata']['name']}: {key}"
                assert not CREDENTIALS_IN_URL.search(value), f"{doc['metadata']['name']}/{key} holds credentials"
        if doc["kind"] in WORKLOADS:
            for container in containers(pod_spec(doc)):
                for name, var in env_of(container).items():
                    if SECRET_NAME.search(name) and "value" in var:
                        pytest.fail(f"{doc['metadata']['name']}/{container['name']}: {name} has a literal value")
                    assert not CREDENTIALS_IN_URL.search(var.get("value", "").replace("$(REDIS_PASSWORD)", "")), name


def assert_pod_is_hardened(where: str, spec: dict) -> None:
    """Non-root, seccomp, no privilege escalation, no capabilities, read-only root, requests and limits."""
    pod = spec.get("securityContext", {})
    assert spec.get("automountServiceAccountToken") is False, f"{where}: mounts a Kubernetes API token"
    for container in containers(spec):
        name = f"{where}/{container['name']}"
        security = {**pod, **container.get("securityContext", {})}
        assert security.get("runAsNonRoot") is True and security.get("runAsUser", 1) != 0, f"{name}: may run as root"
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: no seccomp profile"
        assert security.get("allowPrivilegeEscalation") is False and not security.get("privileged"), name
        assert security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: keeps capabilities"
        assert security.get("readOnlyRootFilesystem") is True, f"{name}: writable root filesystem"
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}: no cpu/memory {kind}"
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name}: unpinned image {image}"


def test_every_pod_is_non_root_limited_and_probed(docs):
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert len(workloads) == 5  # bento, mlflow, pushgateway, redis, backup
    for doc in workloads:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert_pod_is_hardened(where, pod_spec(doc))
        if doc["kind"] in {"Deployment", "StatefulSet"}:  # long-running: both probes on every container
            for container in pod_spec(doc)["containers"]:
                assert {"livenessProbe", "readinessProbe"} <= set(container), f"{where}/{container['name']}: probes"


def test_network_is_denied_by_default_and_every_pod_has_its_policy(docs):
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = find(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    selectors = [p["spec"]["podSelector"].get("matchLabels", {}) for p in policies if p["spec"]["podSelector"]]
    dagster_pods = [{"stockpred.io/role": "pipeline"}, {"stockpred.io/role": "dagster-control"}]  # the Helm release
    pods = [pod_labels(d) for d in docs if d["kind"] in WORKLOADS] + dagster_pods
    for labels in pods:
        assert any(sel.items() <= labels.items() for sel in selectors), f"no NetworkPolicy selects {labels}"
    # every label a policy allows traffic from or to belongs to a pod here or in the Dagster release
    peers = [
        peer["podSelector"]["matchLabels"]
        for p in policies
        for rule in p["spec"].get("ingress", []) + p["spec"].get("egress", [])
        for peer in rule.get("from", []) + rule.get("to", [])
        if "podSelector" in peer and "namespaceSelector" not in peer
    ]
    for peer in peers:
        assert any(peer.items() <= labels.items() for labels in pods), f"a NetworkPolicy names unknown pods {peer}"
    # Redis takes connections only from its clients, and calls nothing
    redis = find(docs, "NetworkPolicy", "redis")["spec"]
    assert redis["egress"] == [] and redis["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_dagster_values_label_pods_as_the_policies_expect():
    values = yaml.safe_load((DEPLOY / "dagster" / "values.yaml").read_text())
    (code,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for labels in (code["labels"], launcher["labels"]):
        assert labels["stockpred.io/role"] == "pipeline" and labels["stockpred.io/postgres-client"] == "true"
    for part in (values["dagsterWebserver"], values["dagsterDaemon"]):
        assert part["labels"]["stockpred.io/role"] == "dagster-control"
        assert part["podSecurityContext"]["runAsNonRoot"] is True and part["resources"]["limits"]


# -- monitoring (CRDs: checked against what they select) -------------------------------------------------------------


def promql_balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())


def test_service_monitors_select_services_and_their_ports(docs):
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {"stockpred-bento", "redis", "pushgateway"}
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        spec = monitor["spec"]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [s for s in services if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels"}
            assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected), endpoint
            assert re.fullmatch(r"\d+[sm]", endpoint["interval"])


def test_rules_cover_the_golden_signals_cache_drift_and_model(docs):
    rule = find(docs, "PrometheusRule", "stockpred")
    assert set(rule["spec"]) == {"groups"} and rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    records, alerts = {}, {}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"]
        for r in group["rules"]:
            assert ("record" in r) != ("alert" in r), r
            assert isinstance(r["expr"], str) and promql_balanced(r["expr"]), r["expr"]
            if "record" in r:
                assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r["record"]), r["record"]
                records[r["record"]] = r["expr"]
            else:
                assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
                assert r["labels"]["severity"] in {"warning", "critical"} and r["annotations"]["summary"]
                assert re.fullmatch(r"\d+[smhd]", r.get("for", "0m")), r["for"]
                alerts[r["alert"]] = r["expr"]
    used = {name for expr in [*records.values(), *alerts.values()] for name in re.findall(r"stockpred:[\w:]+", expr)}
    assert used <= set(records), f"rules use undefined recordings: {used - set(records)}"
    signals = {
        "latency": "StockpredPredictionLatencyHigh",
        "traffic": "StockpredNoTraffic",
        "errors": "StockpredPredictionErrors",
        "saturation": "StockpredCPUSaturated",
        "cache hit rate": "StockpredCacheHitRateLow",
        "drift": "StockpredFeatureDrift",
        "model": "StockpredModelRankICNegative",
    }
    missing = {signal: name for signal, name in signals.items() if name not in alerts}
    assert not missing
    assert "StockpredGPUSaturated" in alerts and "StockpredAtMaxReplicas" in alerts and "StockpredRedisDown" in alerts


def test_the_grafana_dashboard_charts_the_recorded_signals(docs):
    config = find(docs, "ConfigMap", "stockpred-grafana-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["stockpred-dashboard.json"])
    assert dashboard["uid"] and dashboard["title"] == "stockpred"
    charts = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " ".join(p["title"] for p in charts).lower()
    for word in ("traffic", "errors", "latency", "saturation", "cache", "drift", "rank ic"):
        assert word in titles, word
    exprs = [t["expr"] for p in charts for t in p["targets"]]
    assert all(promql_balanced(e) for e in exprs)
    groups = find(docs, "PrometheusRule", "stockpred")["spec"]["groups"]
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    used = {name for e in exprs for name in re.findall(r"stockpred:[\w:]+", e)}
    assert used and used <= records, used - records
    grid = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]]
    assert len(grid) == len(set(grid)), "panels overlap"


# -- Dagster: the instance of deploy/ and the Helm values ------------------------------------------------------------


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


# -- images ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dockerfile", "port", "command"),
    [
        ("bento/Dockerfile", 3000, "bento.service:StockPredictor"),
        ("dagster/Dockerfile", 3030, "stockpred_assets.definitions"),
        ("mlflow/Dockerfile", 5000, "mlflow"),
    ],
)
def test_images_run_as_a_non_root_user(dockerfile, port, command):
    text = (DEPLOY / dockerfile).read_text()
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{dockerfile} runs as root"
    assert f"EXPOSE {port}" in text and command in text
    if dockerfile == "bento/Dockerfile":
        assert "download.pytorch.org/whl/cu" in text  # the CUDA build of torch
