"""The baseline: a bare BentoML JSON endpoint (no auth, no cache, no model) with as many workers as the real one."""

from __future__ import annotations

import os

import bentoml


@bentoml.service(name="bare", workers=int(os.environ.get("BARE_WORKERS", "2")), traffic={"timeout": 30})
class Bare:
    @bentoml.api(route="/predict")
    async def predict(self, ticker: str) -> dict:
        return {"ticker": ticker.upper(), "prediction": 0.0}
