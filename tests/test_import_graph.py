"""Data and code flow one way: stockpred_core at the bottom, imported by everything and importing nothing of ours;
resources above it, the Dagster code location above them; the service and the stream worker beside them on the core
alone."""

import ast
import subprocess
import sys
from pathlib import Path

from support import ROOT

# package -> the packages of this project it may import
ALLOWED = {
    "stockpred_core": {"stockpred_core"},
    "stockpred_resources": {"stockpred_core", "stockpred_resources"},
    "stockpred_assets": {"stockpred_core", "stockpred_resources", "stockpred_assets"},
    "bento": {"stockpred_core", "bento"},
    "stream": {"stockpred_core", "stream"},  # the intraday worker: beside the service, on the core alone
    "dashboard": {"stockpred_core", "dashboard"},  # the analysts' web app: beside the service, on the core alone
}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def upward_arrows(root: Path = ROOT) -> list[str]:
    arrows = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for module in sorted(imports_of(path)):
                top = module.split(".")[0]
                if top in ALLOWED and top not in allowed:
                    arrows.append(f"{path.relative_to(root)} imports {module}")
    return arrows


def test_no_import_runs_back_up_the_layers():
    assert upward_arrows() == []


def test_the_walk_sees_an_upward_arrow(tmp_path):
    """The check can fail: a core module importing the code location, even inside a function, is reported."""
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "stockpred_core" / "bad.py").write_text("def f():\n    from stockpred_assets.definitions import defs\n")
    (tmp_path / "bento" / "bad.py").write_text("import stockpred_resources.lake\n")
    assert upward_arrows(tmp_path) == [
        "stockpred_core/bad.py imports stockpred_assets.definitions",
        "bento/bad.py imports stockpred_resources.lake",
    ]


def test_the_core_imports_in_an_interpreter_without_dagster_or_bentoml():
    """Every core module imports with Dagster and BentoML made unimportable, and loads nothing of either."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "stockpred_core").rglob("*.py")
    )
    code = f"""
import importlib, importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dagster", "bentoml") or name.split(".")[0].startswith("dagster_"):
            raise ModuleNotFoundError(f"{{name}} is blocked in this test", name=name)
sys.meta_path.insert(0, Blocked())
for name in {modules!r}:
    importlib.import_module(name)
ours = ("dagster", "bentoml", "stockpred_assets", "stockpred_resources", "bento")
print(len({modules!r}), sorted(m for m in sys.modules if m.split(".")[0] in ours))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"{len(modules)} []"
