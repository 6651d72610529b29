"""The intraday stream's workloads (deploy/k8s/base/stream), checked offline against the real command line: the
predicting worker's command parses with `stockpred-stream`'s own parser and passes its checks, with the environment
the pod gets; it runs alone (replicas 1, Recreate) and serves its metrics where the probes, the Service and the
NetworkPolicies look; the persist CronJob runs after the New York close on weekdays and its shell line expands to a
command the parser accepts. The images are checked in test_images.py, the rules and dashboard in test_monitoring*.py."""

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from k8s_manifests import DEPLOY, WORKLOADS, find, pod_labels, pod_spec
from support.tls import REDIS_URL

import stream.cli

STREAM_CLI = Path(sys.executable).with_name("stockpred-stream")
PLACEHOLDER = "p4ss"  # what a secretKeyRef stands for here


def stream_workloads(docs) -> list[dict]:
    return [
        d
        for d in docs
        if d["kind"] in WORKLOADS
        and any("stockpred-stream" in " ".join(c.get("command", [])) for c in pod_spec(d)["containers"])
    ]


def environment(docs, container: dict) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: config maps (envFrom), then `env` with $(VAR) expanded;
    secrets stand for a placeholder, optional secrets are left out."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            assert source["secretRef"].get("optional") is True, f"{source}: a Secret only for env vars is optional"
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], var["value"])
        else:
            env[var["name"]] = PLACEHOLDER
    return env


@pytest.fixture
def pod_environment(monkeypatch):
    """Replace this process's STOCKPRED_* variables with a container's."""

    def apply(env: dict[str, str]) -> None:
        for name in [n for n in os.environ if n.startswith("STOCKPRED_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


def test_the_stream_runs_the_code_location_image_the_helm_values_name(docs):
    values = yaml.safe_load((DEPLOY / "dagster" / "values.yaml").read_text())
    image = values["dagster-user-deployments"]["deployments"][0]["image"]
    workloads = stream_workloads(docs)
    assert {d["metadata"]["name"] for d in workloads} == {"stockpred-stream", "stockpred-stream-persist"}
    for doc in workloads:
        for container in pod_spec(doc)["containers"]:
            assert container["image"] == f"{image['repository']}:{image['tag']}", doc["metadata"]["name"]


def test_predicting_workers_run_alone(docs):
    """Two predicting workers in one consumer group would each score part of the universe."""
    predicting = [
        d for d in stream_workloads(docs) if any("--predict" in c["command"] for c in pod_spec(d)["containers"])
    ]
    assert [d["metadata"]["name"] for d in predicting] == ["stockpred-stream"]
    for doc in predicting:
        assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] == 1
        assert doc["spec"]["strategy"] == {"type": "Recreate"}  # the old pod is gone before the new one reads
        assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler" and
                    d["spec"]["scaleTargetRef"]["name"] == doc["metadata"]["name"]]  # fmt: skip


def test_the_worker_command_parses_with_the_real_cli(docs, pod_environment, monkeypatch):
    deployment = find(docs, "Deployment", "stockpred-stream")
    (container,) = pod_spec(deployment)["containers"]
    command = container["command"]
    assert command[:3] == ["stockpred-stream", "worker", "--predict"]
    pod_environment(environment(docs, container))
    started = []
    monkeypatch.setattr(stream.cli, "serve", lambda specs: started.extend(specs) or 0)
    assert stream.cli.main(command[1:]) == 0  # parsed, checked (--predict: one process), not started
    (spec,) = started
    assert spec.predict and spec.redis_url == REDIS_URL.replace("$(REDIS_PASSWORD)", PLACEHOLDER)
    assert spec.owned == tuple(range(spec.shards)) and spec.consumer == "stream-0"
    # the metrics: served where the port, the probes, the Service and the NetworkPolicy say
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    service = find(docs, "Service", "stockpred-stream")["spec"]
    assert service["selector"].items() <= pod_labels(deployment).items()
    (service_port,) = service["ports"]
    assert service_port == {"name": "metrics", "port": spec.metrics_port, "targetPort": "metrics", "protocol": "TCP"}
    policy = find(docs, "NetworkPolicy", "stockpred-stream")["spec"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": spec.metrics_port}]
    # and every option the manifest uses is one the installed console script lists
    help_text = subprocess.run([STREAM_CLI, "worker", "--help"], capture_output=True, text=True, check=True).stdout
    for option in command[2:]:
        assert option.split("=")[0] in help_text, option


def test_the_persist_job_runs_after_the_new_york_close_on_weekdays(docs, pod_environment, monkeypatch, tmp_path):
    cronjob = find(docs, "CronJob", "stockpred-stream-persist")
    assert cronjob["spec"]["schedule"] == "30 16 * * 1-5" and cronjob["spec"]["timeZone"] == "America/New_York"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod_spec(cronjob)["containers"]
    shell, flag, line = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c") and "stockpred-stream persist" in line
    # the line as the pod's shell runs it, with a stockpred-stream that only writes down its arguments
    fake = tmp_path / "bin" / "stockpred-stream"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\n')
    fake.chmod(0o755)
    before = dt.datetime.now(ZoneInfo("America/New_York")).date()
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    subprocess.run([shell, flag, line], env=env, check=True, timeout=30)
    after = dt.datetime.now(ZoneInfo("America/New_York")).date()
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "persist" and argv[1:3] in (["--date", f"{before}"], ["--date", f"{after}"])
    # ... parsed by the real CLI with the pod's environment
    pod_environment(environment(docs, container))
    written = []
    monkeypatch.setattr(stream.cli, "Lake", lambda url: url)
    monkeypatch.setattr(stream.cli, "persist_session", lambda _client, lake, day, _prefix: written.append((lake, day)))
    assert stream.cli.main(argv) == 0
    [(lake, day)] = written
    assert lake.startswith("s3://") and lake.endswith("-lake/lake") and day in (before, after)
    help_text = subprocess.run([STREAM_CLI, "persist", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--date" in help_text


def _admits(policy: dict, direction: str, peer: dict, port: int) -> bool:
    for rule in policy["spec"].get(direction, []):
        peers = rule.get("from" if direction == "ingress" else "to", [])
        pods = [p["podSelector"]["matchLabels"] for p in peers if "podSelector" in p and "namespaceSelector" not in p]
        matches = any(labels.items() <= peer.items() for labels in pods)
        if matches and {"protocol": "TCP", "port": port} in rule.get("ports", []):
            return True
    return False


def _selects(policy: dict, labels: dict) -> bool:
    return policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()


def allowed(docs, source: dict, target: dict, port: int) -> bool:
    """Whether the NetworkPolicies let pods labelled `source` reach pods labelled `target` on `port` (both ends)."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    out = any(_selects(p, source) and _admits(p, "egress", target, port) for p in policies)
    into = any(_selects(p, target) and _admits(p, "ingress", source, port) for p in policies)
    return out and into


def test_the_network_lets_the_stream_reach_redis_mlflow_and_the_lake(docs):
    worker = pod_labels(find(docs, "Deployment", "stockpred-stream"))
    persist = pod_labels(find(docs, "CronJob", "stockpred-stream-persist"))
    redis = pod_labels(find(docs, "StatefulSet", "redis"))
    mlflow = pod_labels(find(docs, "Deployment", "mlflow"))
    assert allowed(docs, worker, redis, 6379) and allowed(docs, persist, redis, 6379)
    assert allowed(docs, worker, mlflow, 5000) and not allowed(docs, persist, mlflow, 5000)
    assert worker["stockpred.io/egress-https"] == persist["stockpred.io/egress-https"] == "true"  # S3
    assert not allowed(docs, worker, pod_labels(find(docs, "Deployment", "stockpred-bento")), 3000)
