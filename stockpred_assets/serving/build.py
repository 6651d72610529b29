"""`bentoml build` for the service, in a child process (BentoML configures logging and more when imported)."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stockpred_core.settings import PROJECT_ROOT

TAG_MARK = "__tag__:"


class BentoBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    seconds: float
    path: str


def build_bento(labels: dict[str, str], bentofile: str, bentoml_home: str | None, timeout: int = 900) -> BuiltBento:
    """Build the Bento from the repository root; offline (the bentofile does not lock packages)."""
    cmd = [sys.executable, "-m", "bentoml", "build", "-f", bentofile, "-o", "tag", "--do-not-track"]
    for key, value in labels.items():
        cmd += ["--label", f"{key}={value}"]
    env = None if bentoml_home is None else {**os.environ, "BENTOML_HOME": bentoml_home}
    started = time.monotonic()
    out = subprocess.run(
        [*cmd, "."], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    tags = [line[len(TAG_MARK) :].strip() for line in out.stdout.splitlines() if line.startswith(TAG_MARK)]
    if out.returncode != 0 or not tags:
        raise BentoBuildError(f"bentoml build failed ({out.returncode}): {(out.stdout + out.stderr)[-3000:]}")
    name, _, version = tags[-1].partition(":")
    # where the build went: the configured home, else BentoML's own choice (BENTOML_HOME, else ~/bentoml)
    home = Path(bentoml_home or os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
    return BuiltBento(tags[-1], time.monotonic() - started, str(home / "bentos" / name / version))
