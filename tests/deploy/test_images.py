"""The images of deploy/ checked offline: each Dockerfile runs as a non-root user, exposes its port and starts its
service (the service's image with the CUDA build of torch)."""

import re

import pytest
from k8s_manifests import DEPLOY


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
