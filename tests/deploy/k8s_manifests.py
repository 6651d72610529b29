"""What the deploy/ tests share (not tests themselves): deploy/k8s rendered by kustomize, and the look-ups and checks
its objects go through."""

import shutil
import subprocess
from functools import cache

import kubernetes_validate
import pytest
import yaml
from support import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = {"staging": 3, "production": 10}  # overlay -> prediction replicas
# The oldest minor version the big managed offerings still support, and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
MONITORING_API = "monitoring.coreos.com/v1"
CERT_MANAGER_API = "cert-manager.io/v1"
CRD_APIS = {MONITORING_API, CERT_MANAGER_API}  # kinds kubernetes-validate has no schema of: checked by their own tests
WORKLOADS = {"Deployment", "StatefulSet", "CronJob", "Job"}


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
