"""Environment variables for a test: a local STOCKPRED_* environment under a directory, set for a block."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def local_env(root: Path, **extra: str) -> dict[str, str]:
    """STOCKPRED_* variables for a local environment whose data lives under `root`."""
    return {"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(root), **extra}


@contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for the block, restoring the previous values afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
