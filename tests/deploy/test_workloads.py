"""What each workload of deploy/k8s must have, checked offline on every overlay: the GPU service behind TLS, Redis
with a password and persistence, MLflow on PostgreSQL and S3, the config map, and the daily database backup."""

from k8s_manifests import DEPLOY, K8S, containers, env_of, find, pod_labels, pod_spec

from stockpred_core.settings import environment_variables


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
