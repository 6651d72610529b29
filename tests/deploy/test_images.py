"""The images of deploy/ checked offline: each Dockerfile runs as a non-root user, exposes its port and starts its
service (the service's image with the CUDA build of torch)."""

import re
import tomllib

import pytest
from k8s_manifests import DEPLOY
from support import ROOT


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


@pytest.mark.parametrize("image", ["bento", "dagster"])
def test_python_images_hold_every_package_the_project_installs(image):
    """pyproject's packages (stream/ included: its console script, `stockpred-stream`, runs from the dagster image in
    deploy/k8s/base/stream) are copied into the image, and its .dockerignore lets them through."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert "stream" in packages
    text = (DEPLOY / image / "Dockerfile").read_text()
    ignore = (DEPLOY / image / "Dockerfile.dockerignore").read_text().splitlines()
    for package in packages:
        assert f"COPY {package} /src/{package}\n" in text, f"{image}: {package} not copied"
        assert f"!{package}/" in ignore, f"{image}: {package} excluded from the build context"
