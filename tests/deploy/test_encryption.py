"""Encryption and sign-in in deploy/ (issue 23), checked offline on every overlay, and the S3 settings run for real
against a private S3 server: TLS to Redis and PostgreSQL for every client, server-side encryption of everything
written to the buckets, the people-facing UIs behind oauth2-proxy, secrets by reference only."""

import json
from urllib.parse import parse_qs, urlparse

import boto3
import fsspec
import pandas as pd
import pytest
import yaml
from k8s_manifests import (
    CERT_MANAGER_API,
    DEPLOY,
    K8S,
    WORKLOADS,
    containers,
    env_of,
    find,
    pod_labels,
    pod_spec,
)
from support.tls import REDIS_CA_DIR, REDIS_URL

from stockpred_core.io.lake import Lake

CONFIG = dict(line.split("=", 1) for line in (K8S / "base" / "config.env").read_text().split())
PG_CA_DIR = "/etc/stockpred/postgres"
UIS = {  # Ingress -> the provider groups that may open it
    "dagster-webserver": {"stockpred-engineers"},
    "mlflow": {"stockpred-engineers"},  # MLflow has no permissions of its own: the registry's aliases are in reach
    "stockpred-dashboard": {"stockpred-analysts", "stockpred-engineers"},
}


def mounts(doc: dict, container: dict) -> dict[str, dict]:
    """mount path -> the volume mounted there."""
    volumes = {v["name"]: v for v in pod_spec(doc).get("volumes", [])}
    return {m["mountPath"]: volumes.get(m["name"], {}) for m in container.get("volumeMounts", [])}  # {}: a claim


def test_every_redis_client_connects_with_tls_and_checks_the_ca(docs):
    clients = 0
    for doc in (d for d in docs if d["kind"] in WORKLOADS):
        for container in containers(pod_spec(doc)):
            variable = env_of(container).get("STOCKPRED_REDIS_URL")
            if variable is None:
                continue
            clients += 1
            where = f"{doc['metadata']['name']}/{container['name']}"
            assert variable["value"] == REDIS_URL, where
            ca = mounts(doc, container)[REDIS_CA_DIR]["secret"]
            assert ca["secretName"] == "redis-tls" and ca["items"] == [{"key": "ca.crt", "path": "ca.crt"}], where
    assert clients == 5  # the service, the stream worker and its persist job, the dashboard, the notifier
    query = parse_qs(urlparse(REDIS_URL).query)
    assert urlparse(REDIS_URL).scheme == "rediss" and query["ssl_cert_reqs"] == ["required"]


def test_redis_listens_on_tls_only_with_a_renewed_certificate(docs):
    redis_set = find(docs, "StatefulSet", "redis")
    config = next(v["configMap"]["name"] for v in pod_spec(redis_set)["volumes"] if v["name"] == "config")
    conf = find(docs, "ConfigMap", config)["data"]["redis.conf"].splitlines()
    assert {"port 0", "tls-port 6379", "tls-auth-clients no"} <= set(conf)
    server, exporter = pod_spec(redis_set)["containers"]
    assert mounts(redis_set, server)["/tls"]["secret"]["secretName"] == "redis-tls"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "--tls" in " ".join(server[probe]["exec"]["command"]), probe
    assert env_of(exporter)["REDIS_ADDR"]["value"].startswith("rediss://localhost:")
    certificate = find(docs, "Certificate", "redis-tls")
    assert certificate["apiVersion"] == CERT_MANAGER_API and certificate["spec"]["secretName"] == "redis-tls"
    assert {"redis", "localhost"} <= set(certificate["spec"]["dnsNames"])
    assert certificate["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "stockpred-internal-ca",
    }
    assert certificate["spec"]["privateKey"]["rotationPolicy"] == "Always"


def test_every_postgres_client_verifies_the_server(docs):
    assert CONFIG["PGSSLMODE"] == "verify-full" and CONFIG["PGSSLROOTCERT"] == f"{PG_CA_DIR}/ca.crt"
    clients = [d for d in docs if d["kind"] in WORKLOADS and pod_labels(d).get("stockpred.io/postgres-client")]
    assert {d["metadata"]["name"] for d in clients} == {"mlflow", "postgres-backup"}
    for doc in clients:
        for container in containers(pod_spec(doc)):
            env = env_of(container)
            if "PGSSLMODE" not in env:
                continue
            assert env["PGSSLROOTCERT"]["valueFrom"]["configMapKeyRef"]["key"] == "PGSSLROOTCERT"
            assert mounts(doc, container)[PG_CA_DIR]["configMap"]["name"] == "stockpred-postgres-ca"
    values = yaml.safe_load((DEPLOY / "dagster" / "values.yaml").read_text())
    (code,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for name, part in {
        "webserver": values["dagsterWebserver"],
        "daemon": values["dagsterDaemon"],
        "code server": code,
        "run pods": launcher,
    }.items():
        paths = {m["mountPath"]: m["name"] for m in part["volumeMounts"]}
        volumes = {v["name"]: v for v in part["volumes"]}
        assert volumes[paths[PG_CA_DIR]]["configMap"]["name"] == "stockpred-postgres-ca", name
        if name in ("code server", "run pods"):  # they write the online features to Redis
            assert volumes[paths[REDIS_CA_DIR]]["secret"]["secretName"] == "redis-tls", name


def test_the_uis_are_behind_the_sign_in_and_the_api_is_not(overlay, docs):
    namespace = "stockpred-staging" if overlay == "staging" else "stockpred"
    for name, groups in UIS.items():
        annotations = find(docs, "Ingress", name)["metadata"]["annotations"]
        auth = urlparse(annotations["nginx.ingress.kubernetes.io/auth-url"])
        assert auth.netloc == f"oauth2-proxy.{namespace}.svc.cluster.local:4180" and auth.path == "/oauth2/auth"
        assert set(parse_qs(auth.query)["allowed_groups"][0].split(",")) == groups, name
        assert "/oauth2/start?rd=" in annotations["nginx.ingress.kubernetes.io/auth-signin"]
        assert find(docs, "Ingress", name)["spec"]["tls"], name
    dashboard = find(docs, "Ingress", "stockpred-dashboard")["metadata"]["annotations"]
    assert "X-Auth-Request-Access-Token" in dashboard["nginx.ingress.kubernetes.io/auth-response-headers"]
    api = find(docs, "Ingress", "stockpred-bento")["metadata"].get("annotations", {})
    assert "nginx.ingress.kubernetes.io/auth-url" not in api  # API keys and bearer tokens, checked by the service
    proxy = pod_spec(find(docs, "Deployment", "oauth2-proxy"))["containers"][0]
    secrets = {name: var["valueFrom"]["secretKeyRef"]["name"] for name, var in env_of(proxy).items()}
    assert secrets == dict.fromkeys(
        ("OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"), "stockpred-oauth2-proxy"
    )
    assert {"--cookie-secure=true", "--pass-access-token=true", "--code-challenge-method=S256"} <= set(proxy["args"])
    domain = ".staging.example.com" if overlay == "staging" else ".example.com"
    proxy_config = find(
        docs,
        "ConfigMap",
        next(d["metadata"]["name"] for d in docs if d["metadata"]["name"].startswith("oauth2-proxy-")),
    )
    assert proxy_config["data"]["OAUTH2_PROXY_COOKIE_DOMAINS"] == domain
    mlflow_host = find(docs, "Ingress", "mlflow")["spec"]["rules"][0]["host"]
    mlflow_args = pod_spec(find(docs, "Deployment", "mlflow"))["containers"][0]["args"]
    assert mlflow_host in next(a for a in mlflow_args if a.startswith("--allowed-hosts=")).split(",")
    assert find(docs, "NetworkPolicy", "oauth2-proxy")["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 4180}
    ]


def test_the_service_and_dashboard_trust_the_same_issuer():
    from stockpred_core.settings import load_settings

    config = load_settings(CONFIG).service.jwt_config()
    assert config.issuer.startswith("https://") and config.jwks_url.startswith(config.issuer)
    assert config.audience == "stockpred" and set(config.algorithms) == {"RS256", "ES256"}


@pytest.fixture
def fsspec_env(monkeypatch):
    """fsspec's configuration as the pods get it from config.env's FSSPEC_S3 (fsspec reads it at import)."""
    conf = {}
    fsspec.config.set_conf_env(conf, {"FSSPEC_S3": CONFIG["FSSPEC_S3"]})
    monkeypatch.setitem(fsspec.config.conf, "s3", conf["s3"])


def test_the_lake_and_mlflow_artifacts_are_encrypted_server_side(s3_bucket, fsspec_env, monkeypatch, tmp_path):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    lake = Lake(f"s3://{s3_bucket}/lake")
    lake.write_table("serving", "online_features", pd.DataFrame({"ticker": ["AAPL"], "value": [1.0]}))
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys
    for key in keys:
        assert s3.head_object(Bucket=s3_bucket, Key=key)["ServerSideEncryption"] == "aws:kms", key

    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    monkeypatch.setenv("MLFLOW_S3_UPLOAD_EXTRA_ARGS", CONFIG["MLFLOW_S3_UPLOAD_EXTRA_ARGS"])
    (tmp_path / "model.txt").write_text("a model")
    S3ArtifactRepository(f"s3://{s3_bucket}/artifacts").log_artifact(str(tmp_path / "model.txt"))
    head = s3.head_object(Bucket=s3_bucket, Key="artifacts/model.txt")
    assert head["ServerSideEncryption"] == json.loads(CONFIG["MLFLOW_S3_UPLOAD_EXTRA_ARGS"])["ServerSideEncryption"]


def test_the_backup_uploads_encrypted():
    script = (K8S / "base" / "backup" / "backup.sh").read_text()
    assert '--sse "${S3_SSE:-aws:kms}"' in script and CONFIG["S3_SSE"] == "aws:kms"
