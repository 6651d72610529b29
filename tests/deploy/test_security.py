"""The security basics of deploy/, checked offline on every overlay: no secret in plain text, every pod meets the
`restricted` Pod Security Standard with requests and limits, and the network is denied by default with a policy for
every pod (the Dagster Helm release's included)."""

import re

import pytest
import yaml
from k8s_manifests import DEPLOY, WORKLOADS, assert_pod_is_hardened, containers, env_of, find, pod_labels, pod_spec

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|CREDENTIAL", re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]*:[^/\s@]+@")  # user:password@host


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


def test_every_pod_is_non_root_limited_and_probed(docs):
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert len(workloads) == 10  # bento, mlflow, pushgateway, redis, backup, the stream worker, its persist job,
    # the dashboard, the notifier and oauth2-proxy
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
