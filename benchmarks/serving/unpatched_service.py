"""The service without the fix to BentoML's request-timeout timers (bento/patches.py), to measure what the fix is
worth: `run.py --timer-fix off`."""

from __future__ import annotations

import sys
from pathlib import Path

from bentoml._internal.server.http import traffic

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
original = traffic.TimeoutMiddleware.__call__
from bento.service import StockPredictor  # noqa: E402  (applies the fix: undone below)

traffic.TimeoutMiddleware.__call__ = original
__all__ = ["StockPredictor"]
