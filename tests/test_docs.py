"""README.md and docs/ stay true: every shell command they show is run by a test that reads it from the docs
(`doc_command(pattern)`, see tests/support/doc_commands.py), every STOCKPRED_* variable the code reads is
documented, the layout names every package folder, and links resolve.

How a command is covered: a test calls `doc_command` / `doc_commands` with a pattern (a string literal) that finds
it, and runs what it gets. This file runs the cheap ones itself (`make -n` of every make command, the measurement
scripts up to their argument parsing, `kubectl kustomize`, the service walkthrough against a started service);
tests/assets/test_end_to_end.py and tests/test_make_dev.py run the others. A new command that no pattern finds fails
`test_every_doc_command_is_run_by_a_test`."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.doc_commands import ROOT, all_commands, doc_command, doc_commands, doc_files

from stockpred_core.settings import environment_variables, load_settings

TESTS = ROOT / "tests"
DOCS = ROOT / "docs"
CALLS = {"doc_command", "doc_commands", "doc_options"}
README_MAX_LINES = 150
# make target -> what its dry run must show it runs
MAKE_RUNS = {"demo": "scripts/demo.py", "test": "pytest", "dev": "scripts/dev.py", "serve": "bentoml serve",
             "dashboard": "stockpred-dashboard"}  # fmt: skip
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S*)$")


def runners(tests: Path = TESTS) -> list[tuple[str, str]]:
    """(pattern, "tests/file.py::function") for every `doc_command("...")` / `doc_commands("...")` call in the tests."""
    found = []
    for path in sorted(tests.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in CALLS:
                    arg = node.args[0]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.append((arg.value, f"{path.relative_to(tests.parent).as_posix()}::{function.name}"))
    return found


def uncovered(root: Path = ROOT, tests: Path = TESTS) -> list[str]:
    patterns = [pattern for pattern, _ in runners(tests)]
    return [c for c in all_commands(root) if not any(re.search(p, c) for p in patterns)]


def test_every_doc_command_is_run_by_a_test():
    missing = uncovered()
    assert not missing, (
        "commands in README.md or docs/ that no test runs (add a test that gets them with doc_command(pattern)):\n"
        + "\n".join(f"  {c}  ({', '.join(all_commands()[c])})" for c in missing)
    )


def test_every_pattern_in_the_tests_finds_a_command():
    """Also for the slow tests that `-m "not slow"` skips: a pattern that finds nothing runs nothing."""
    commands = list(all_commands())
    stale = [(p, where) for p, where in runners() if not any(re.search(p, c) for c in commands)]
    assert not stale, stale


def test_a_command_no_test_runs_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("```bash\nmake demo   # runs\nmake nonsense\n```\n")
    (tmp_path / "docs" / "x.md").write_text("```console\n$ .venv/bin/python tool.py --fast\noutput\n```\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text("def test_demo():\n    run(doc_command(r'^make demo$'))\n")
    assert uncovered(tmp_path, tests) == ["make nonsense", ".venv/bin/python tool.py --fast"]


def _make_dry_run(command: str) -> str:
    words = shlex.split(command)
    env = dict(os.environ)
    while ASSIGNMENT.match(words[0]):
        name, value = ASSIGNMENT.match(words.pop(0)).groups()
        env[name] = value
    assert words[0] == "make", command
    if any(name.startswith("STOCKPRED_") for name in env):
        load_settings(env)  # the assignments are settings the code accepts
    out = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{command}: {out.stderr}"
    target = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), None)
    assert MAKE_RUNS.get(target, "") in out.stdout, f"{command} does not run {MAKE_RUNS[target]}:\n{out.stdout}"
    return out.stdout


def test_make_commands_are_targets_that_run_what_the_docs_say():
    """Every make command, dry run (make -n) with its variables: the target exists and its recipe resolves."""
    for command in doc_commands(r"^(?:[A-Z][A-Z0-9_]*=\S* )*make "):
        _make_dry_run(command)


def test_make_dry_run_fails_for_an_unknown_target():
    with pytest.raises(AssertionError, match="make nonsense"):
        _make_dry_run("make nonsense")


PARSE_ONLY = """
import argparse, importlib.util, json, sys
class Parsed(Exception):
    pass
parse = argparse.ArgumentParser.parse_args
def parse_then_stop(self, *args, **kwargs):
    parse(self, *args, **kwargs)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_then_stop
for path, args in json.loads(sys.argv[1]):
    sys.path.insert(0, str(__import__("pathlib").Path(path).parent))
    sys.argv = [path, *args]
    spec = importlib.util.spec_from_file_location("measured", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if "parse_args" not in open(path).read():
        assert not args and callable(module.main), (path, args)
        continue
    try:
        module.main()
    except Parsed:
        print("parsed", path, args)
    else:
        sys.exit(f"{path}: main() returned without parsing its arguments")
"""


def test_measurement_commands_start_and_accept_their_arguments():
    """The benchmark and real-data commands take minutes (and ../shared/data): each script is imported and its own
    parser reads the documented arguments, then it stops before the work. A misspelt flag fails here."""
    runs = []
    for command in doc_commands(r"^\.venv/bin/python (benchmarks|scripts)/"):
        python, path, *args = shlex.split(command)
        assert python == ".venv/bin/python" and (ROOT / path).is_file(), command
        runs.append((str(ROOT / path), args))
    out = subprocess.run(
        [sys.executable, "-c", PARSE_ONLY, json.dumps(runs)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]


def test_kustomize_command_renders_the_overlay():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    for command in doc_commands(r"^kubectl kustomize "):
        out = subprocess.run(shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "kind: Deployment" in out.stdout, out.stderr


# route -> what its answer in the walkthrough must hold
ANSWERS = {
    "/readyz": lambda body: body["ready"] is True,
    "/predict": lambda body: body["ticker"] == "S00042" and body["model_version"] == "1",
    "/predict_batch": lambda body: body["count"] == 2 and [e["ticker"] for e in body["errors"]] == ["NOPE"],
    "/admin/reload": lambda body: body["changed"] is False and body["model_version"] == "1",
    "/admin/canary": lambda body: body["percent"] == 0 and body["inactive_reason"].startswith("no challenger"),
}


def _served(command: str, checkout: Path, env: dict, log: Path):
    """`... make serve` as written, on a free port, from `checkout`: (process, port) once /readyz answers 200."""
    from support.service import free_port

    from stockpred_core.processes import wait_for_http

    port = free_port()
    makefile = ROOT / "Makefile"
    line = command.replace("make serve", f"make -f {makefile} -o .venv/.installed-cpu serve PORT={port}")
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", line], cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    assert wait_for_http(f"http://127.0.0.1:{port}/readyz", proc, timeout=240), log.read_text()[-4000:]
    return proc, port


def _curl(command: str, port: int, checkout: Path, env: dict) -> dict:
    line = command.replace("127.0.0.1:3000", f"127.0.0.1:{port}")
    out = subprocess.run(["bash", "-c", line], cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
def test_service_commands_run_as_written(tmp_path):
    """docs/service.md (and the README's `make serve` and curl) in a folder shaped like the checkout: the service
    without keys answers the keyless calls; a key made by the documented command opens the keyed ones."""
    from support.service import build_world

    from stockpred_core.io.lake import Lake
    from stockpred_core.processes import stop_group

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(Path(sys.executable).parents[1])
    world = build_world(checkout / "data", keys={})
    features = world.features.assign(ticker="S" + world.features["ticker"].str[1:])  # the simulated market's names
    Lake(world.settings.lake_url).write_table("serving", "online_features", features)
    env = {**os.environ, **world.env, "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("STOCKPRED_API_KEYS_FILE")
    curls = doc_commands(r"^curl ")
    keyless = [c for c in curls if "$TOKEN" not in c]
    keyed = [c for c in curls if "$TOKEN" in c]
    assert keyless and keyed

    proc, port = _served(doc_command(r"^make serve$"), checkout, env, tmp_path / "open.log")
    try:
        for command in keyless:
            route = re.search(r"127\.0\.0\.1:3000(/[\w/]*)", command)[1]
            assert ANSWERS[route](_curl(command, port, checkout, env)), command
    finally:
        stop_group(proc)

    made = subprocess.run(
        ["bash", "-c", doc_command(r"^\.venv/bin/python -m bento\.security new-key ")],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    env["TOKEN"] = re.search(r"^token \(.*\): (\S+)$", made.stdout, re.MULTILINE)[1]
    proc, port = _served(doc_command(r"^STOCKPRED_API_KEYS_FILE=\S+ make serve$"), checkout, env, tmp_path / "keys.log")
    try:
        for command in keyed:
            route = re.search(r"127\.0\.0\.1:3000(/[\w/]*)", command)[1]
            assert ANSWERS[route](_curl(command, port, checkout, env)), command
        refused = _curl(doc_command(r"^curl .*/predict -H 'Content-Type"), port, checkout, env)
        assert "error" in refused  # keys are configured now: the keyless call is refused
    finally:
        stop_group(proc)


def _variables_read_by_the_code() -> set[str]:
    """What the settings read (their names come from field names), and any other STOCKPRED_* the code names."""
    names = environment_variables()
    for folder in ("stockpred_core", "stockpred_resources", "stockpred_assets", "bento", "scripts", "deploy"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".yaml", ".yml", ".env", ".sh", ""}:
                names.update(re.findall(r"\bSTOCKPRED_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore")))
    return names


def test_every_stockpred_variable_is_documented():
    documented = set(re.findall(r"`(STOCKPRED_[A-Z0-9_]+)`", (DOCS / "configuration.md").read_text()))
    names = _variables_read_by_the_code()
    assert {"STOCKPRED_ENV", "STOCKPRED_LAKE_URL", "STOCKPRED_API_KEYS_FILE"} <= names  # the walk finds them
    assert sorted(names - documented) == []


def test_the_layout_names_every_package_folder():
    text = (DOCS / "architecture.md").read_text()
    folders = [
        path.parent
        for package in ("stockpred_core", "stockpred_resources", "stockpred_assets", "bento", "stream")
        for path in (ROOT / package).rglob("*.py")
    ]
    missing = sorted({str(f.relative_to(ROOT)) for f in folders if f"{f.name}/" not in text})
    assert missing == []


def test_relative_links_resolve_and_the_readme_stays_short():
    for path in doc_files():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if not re.match(r"[a-z]+:", target):
                assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to missing {target}"
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES
