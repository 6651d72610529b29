"""What /readyz reports: ready only with a model and online features the model was trained on."""

from __future__ import annotations

from bento.features import LakeFeatures
from bento.models import ModelManager
from bento.store import RedisLink
from stockpred_core.features.alternative_catalog import covers


def latest_date(redis: RedisLink | None, lake: LakeFeatures) -> str | None:
    if redis and redis.up and redis.meta.get("latest_date"):
        return redis.meta["latest_date"]
    return lake.latest_date


def known_count(redis: RedisLink | None, lake: LakeFeatures) -> int:
    if redis and redis.up and redis.meta.get("count"):
        return int(redis.meta["count"])
    return len(lake.rows)


def readiness(
    models: ModelManager, lake: LakeFeatures, redis: RedisLink | None, local_cache: bool
) -> tuple[bool, dict]:
    """(ready, the /readyz body)."""
    served = models.current
    redis_state = "not configured"
    redis_count = 0
    if redis:
        redis_state = "ok" if redis.up else "down (the cause is in the service log)"  # no hosts in answers
        redis_count = int(redis.meta.get("count", 0)) if redis.up else 0
    lake_count = len(lake.rows)
    source = "redis" if redis_count else ("lake" if lake_count else None)
    reasons = []
    if served is None:
        reasons.append(models.error or "no model loaded yet")
    if source is None:
        reasons.append(lake.error or "no online features in Redis nor in the lake")
    versions = _feature_versions(source, redis, lake)
    trained_on = served.feature_set_version if served is not None else None
    if trained_on and versions and not any(covers(v, trained_on) for v in versions):
        reasons.append(
            f"champion v{served.version} was trained on feature set {served.feature_set_version}, online "
            f"features are {sorted(versions)}: {remedy(trained_on)}"
        )
    body = {
        "ready": not reasons,
        "reasons": reasons,
        "model": served.describe() if served else None,
        "model_error": models.error,
        "challenger": models.challenger.describe() if models.challenger else None,
        "features": {
            "source": source,
            "tickers": redis_count or lake_count,
            "latest_date": latest_date(redis, lake),
            "lake_tickers": lake_count,
        },
        "redis": redis_state,
        "cache": "in-process" if local_cache else ("redis" if redis.up else "off"),
        "degraded": bool(redis and not redis.up),
    }
    return not reasons, body


def remedy(trained_on: str) -> str:
    """What brings online vectors a champion of feature set `trained_on` can use."""
    if "+" in trained_on:  # the combined set: the online vectors need the alternative columns
        return "materialize alt_features for the latest day, then online_features"
    return "materialize online_features after the features backfill"


def _feature_versions(source: str | None, redis: RedisLink | None, lake: LakeFeatures) -> set[str]:
    if source == "redis":
        version = redis.meta.get("feature_set_version")
        return {version} if version else set()
    return set(lake.feature_set_versions) if source == "lake" else set()
