"""`bentoml build` packages the service offline (no package locking) from the repository root."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[1]


def test_bentoml_build_packages_the_service(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")}
    bentoml = str(Path(sys.executable).parent / "bentoml")
    out = subprocess.run(
        [bentoml, "build", "-f", "bento/bentofile.yaml", "."],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    [bento_dir] = list((tmp_path / "bentoml" / "bentos" / "stockpred").glob("*/"))
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert manifest["service"] == "bento.service:StockPredictor"
    src = bento_dir / "src"
    assert (src / "bento" / "service.py").is_file() and (src / "stockpred_core" / "features" / "batch.py").is_file()
    assert not (src / "stockpred_assets").exists() and not (src / "stockpred_resources").exists()  # no Dagster
