"""core/ must stay free of Dagster so training, assets and the service share one implementation."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "stockpred_assets" / "core"
SERVICE_SIDE = [
    "stockpred_resources.settings",
    "stockpred_resources.storage",
    "stockpred_resources.registry",
    "stockpred_resources.online_store",
    "bento.predictor",
]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_sources_do_not_import_dagster():
    offenders = {
        p.name: m for p in CORE.glob("*.py") for m in _imported_modules(p) if m.split(".")[0].startswith("dagster")
    }
    assert offenders == {}


def test_importing_core_and_service_side_modules_loads_no_dagster():
    modules = [f"stockpred_assets.core.{p.stem}" for p in sorted(CORE.glob("*.py")) if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules + SERVICE_SIDE!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
