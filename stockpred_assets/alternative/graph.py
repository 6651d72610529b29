"""The alternative group as configured: the raw assets of the sources that are on, the sentiment model when text
is ingested, alt_features, their checks, job and schedule. With no source configured (the default) the group is
empty and the rest of the graph does not change."""

from __future__ import annotations

from dataclasses import dataclass, field

from stockpred_assets.alternative.automation import (
    alt_features_online_sensor,
    alternative_data_job,
    alternative_data_schedule,
    online_features_job,
)
from stockpred_assets.alternative.checks import (
    alt_features_uncovered_are_missing,
    raw_checks,
    sentiment_model_beats_neutral,
)
from stockpred_assets.alternative.features import TEXT_FAMILIES, build_alt_features
from stockpred_assets.alternative.ingestion import RAW_ASSETS
from stockpred_assets.alternative.sentiment import build_sentiment_model
from stockpred_core.features.alternative_catalog import FAMILIES


@dataclass
class AlternativeGraph:
    assets: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    schedules: list = field(default_factory=list)
    sensors: list = field(default_factory=list)


def alternative_graph(sources: dict[str, list[str]], sentences: str | None) -> AlternativeGraph:
    """`sources`: family -> provider names (`Settings.alt_sources`); `sentences`: the sentiment model's training
    file (`Settings.sentiment_sentences`)."""
    if not sources:
        return AlternativeGraph()
    raw = list({id(a): a for a in (RAW_ASSETS[(f, p)] for f in FAMILIES for p in sources.get(f, []))}.values())
    graph = AlternativeGraph(
        assets=[*raw, build_alt_features(sources)],
        checks=[*[check for asset in raw for check in raw_checks(asset)], alt_features_uncovered_are_missing],
        jobs=[alternative_data_job([asset.key.path[-1] for asset in raw]), online_features_job],
        schedules=[alternative_data_schedule],
        sensors=[alt_features_online_sensor],
    )
    if set(sources) & set(TEXT_FAMILIES):
        graph.assets.append(build_sentiment_model(sentences))
        graph.checks.append(sentiment_model_beats_neutral)
    return graph
