"""How providers combine: their priority (first = primary) and when two of them disagree."""

import dagster as dg
from pydantic import Field


class MarketDataResource(dg.ConfigurableResource):
    providers: list[str] = Field(default_factory=lambda: ["simulated"], description="Provider names, primary first")
    disagreement_bps: float = Field(default=50.0, description="Close difference that counts as a disagreement")
