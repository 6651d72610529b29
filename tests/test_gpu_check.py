"""scripts/gpu-check.sh, the one call made on the lent GPU machine, runs here too (CPU only): its CUDA tests skip
saying why, the CPU ones pass, and the benchmark writes its figures. A broken check is found here, not in the few
minutes of device time a session gets."""

import json
import os
import subprocess

import pytest
from support import ROOT

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (make install TORCH=cpu)")


@pytest.mark.slow
def test_the_gpu_check_runs_its_tests_and_the_benchmark(tmp_path):
    venv = ROOT / ".venv" / "bin"
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{venv}:{os.environ['PATH']}"}  # python3: the project's
    out = subprocess.run(
        ["scripts/gpu-check.sh", "run", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tests = (tmp_path / "tests.txt").read_text()
    cuda = torch.cuda.is_available()
    assert "passed" in tests and "failed" not in tests and ("no CUDA GPU here" in tests) != cuda
    figures = json.loads((tmp_path / "gpu.json").read_text())
    expected = {("torch_mlp", "default"), ("torch_mlp", "wide"), ("gru", "default")}
    assert {(c["family"], c["recipe"]) for c in figures["cases"] if c["device"] == "cpu"} == expected
    assert {c["device"] for c in figures["cases"]} == ({"cpu", "cuda"} if cuda else {"cpu"})
    assert all(c["rows_per_s"] > 0 and c["test_ic"] > 0.05 for c in figures["cases"])
    assert "torch" in (tmp_path / "gpu.txt").read_text()
