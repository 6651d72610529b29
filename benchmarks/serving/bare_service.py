"""The baseline: a bare BentoML JSON endpoint (no auth, no cache, no model) with as many workers as the real one.

It gets the same fix to BentoML's request-timeout timers as the real service (bento/patches.py), so the comparison
measures what stockpred adds per request and not that fix; BARE_TIMER_FIX=off leaves it out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bentoml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bento.patches import cancel_request_timers

if os.environ.get("BARE_TIMER_FIX", "on") != "off":
    cancel_request_timers()


@bentoml.service(name="bare", workers=int(os.environ.get("BARE_WORKERS", "2")), traffic={"timeout": 30})
class Bare:
    @bentoml.api(route="/predict")
    async def predict(self, ticker: str) -> dict:
        return {"ticker": ticker.upper(), "prediction": 0.0}
