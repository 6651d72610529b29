"""deploy/k8s checked offline: the base and every overlay render with kustomize and pass kubernetes-validate --strict,
and the overlays set their namespace, replicas and autoscaling."""

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from k8s_manifests import CERT_MANAGER_API, CRD_APIS, K8S_VERSIONS, MONITORING_API, OVERLAYS, find, render


@pytest.mark.parametrize("path", ["base", "overlays/staging", "overlays/production"])
def test_renders_and_passes_kubernetes_validate_strict(path):
    docs = render(path)
    core = [d for d in docs if d["apiVersion"] not in CRD_APIS]
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
    assert {d["kind"] for d in docs if d["apiVersion"] == CERT_MANAGER_API} == {"Certificate"}


def test_the_cli_passes_on_a_rendered_overlay(tmp_path):
    """The command of the issue itself, once: kubernetes-validate --strict on kubectl kustomize's output."""
    rendered = tmp_path / "production.yaml"
    rendered.write_text(yaml.safe_dump_all(render("overlays/production")))
    cli = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run([cli, "--strict", "-k", K8S_VERSIONS[-1], str(rendered)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARN")]
    crds = ("ServiceMonitor", "PrometheusRule", "Certificate")
    assert all(any(kind in w for kind in crds) for w in warnings), warnings  # CRDs: checked by their own tests


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
