"""The Bento's image gets every package the service imports: bento/bentofile.yaml lists it, or a listed package
requires it. (The build itself runs once per session, in the end-to-end serving job: tests/assets/test_end_to_end.py
checks what it ships.)"""

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import ROOT

# Imported by a dependency inside try/except ImportError, so the service runs without it.
# Imported only because they are installed, never needed by the service: tqdm (mlflow.genai.simulators.simulator);
# trio, outcome and sortedcontainers (httpcore tries its trio backend), PySocks (urllib3.contrib.socks) and sniffio
# (anyio's detection), which selenium brings into the dev environment for the dashboard's browser tests.
OPTIONAL = {"tqdm", "trio", "outcome", "sortedcontainers", "pysocks", "sniffio"}


def imported_distributions(module: str) -> set[str]:
    """The installed distributions whose modules `import module` loads, in a fresh interpreter."""
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"STOCKPRED_ENV": "local", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    providers = packages_distributions()
    names = json.loads(out.stdout.strip().splitlines()[-1])
    return {canonicalize_name(dist) for name in names for dist in providers.get(name, [])}


def with_requirements(names: list[str]) -> set[str]:
    """`names` and everything they require, as installed here (environment markers evaluated, no extras)."""
    found, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            wanted = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in wanted:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return found


def test_the_bentofile_lists_what_the_service_imports():
    bentofile = yaml.safe_load((ROOT / "bento" / "bentofile.yaml").read_text())
    listed = [Requirement(p).name for p in bentofile["python"]["packages"]]
    shipped = with_requirements(listed)
    missing = imported_distributions("bento.service") - shipped - {"stockpred"} - OPTIONAL
    assert not missing, f"bento.service imports {sorted(missing)}: add them to bento/bentofile.yaml's packages"


def test_the_check_finds_a_package_left_out():
    # lightgbm is listed only for the service; without it the check must name it
    shipped = with_requirements(["bentoml", "mlflow"])
    assert "lightgbm" in imported_distributions("bento.service") - shipped
