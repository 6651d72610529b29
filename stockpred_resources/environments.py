"""Resources per environment: the one function that maps settings to Dagster resources."""

from __future__ import annotations

from typing import Any

import dagster as dg

from stockpred_core.settings import Settings
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.monitoring import MonitoringResource
from stockpred_resources.providers import (
    AlphaVantageProvider,
    FilesProvider,
    FredFilesProvider,
    FredProvider,
    NewsApiProvider,
    NewsFilesProvider,
    SecEdgarProvider,
    SecFilesProvider,
    SimulatedProvider,
    SocialFilesProvider,
    TwitterProvider,
    YahooProvider,
)
from stockpred_resources.redis import RedisResource
from stockpred_resources.tracking import MLflowResource


def _providers(settings: Settings) -> dict[str, Any]:
    universe = {"tickers": list(settings.universe), "universe_file": settings.universe_file}
    optional_urls = {"yahoo": settings.yahoo_url, "alphavantage": settings.alphavantage_url}
    urls = {name: {"base_url": url} for name, url in optional_urls.items() if url}
    return {
        "simulated_provider": SimulatedProvider(
            seed=settings.simulated_seed,
            universe_size=settings.universe_size,
            regime_start=settings.simulated_regime_start,
        ),
        "yahoo_provider": YahooProvider(**universe, **urls.get("yahoo", {})),
        "alphavantage_provider": AlphaVantageProvider(
            api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY"), **universe, **urls.get("alphavantage", {})
        ),
        "files_provider": FilesProvider(path=settings.files_path or "", **universe),
        "market_data": MarketDataResource(
            providers=list(settings.providers), index_file=settings.index_file, vix_file=settings.vix_file
        ),
    }


def _url(name: str, value: str | None) -> dict[str, str]:
    return {name: value} if value else {}


def _alternative(settings: Settings) -> dict[str, Any]:
    """The configured alternative sources only (the alternative assets of the others are not defined). API keys and
    tokens are read from the environment when a run starts: never stored in the definitions or logged."""
    if settings.alt_universe:
        universe: dict[str, Any] = {"tickers": list(settings.alt_universe)}
    else:
        universe = {"tickers": list(settings.universe), "universe_file": settings.universe_file}
    found: dict[str, Any] = {}
    if "files" in settings.news_providers:
        found["news_files_provider"] = NewsFilesProvider(paths=list(settings.news_paths), **universe)
    if "newsapi" in settings.news_providers:
        found["news_newsapi_provider"] = NewsApiProvider(
            api_key=dg.EnvVar("NEWSAPI_API_KEY"), companies_file=settings.news_companies_file,
            **_url("base_url", settings.newsapi_url), **universe,
        )  # fmt: skip
    if "files" in settings.social_providers:
        found["social_files_provider"] = SocialFilesProvider(paths=list(settings.social_paths), **universe)
    if "twitter" in settings.social_providers:
        found["social_twitter_provider"] = TwitterProvider(
            bearer_token=dg.EnvVar("TWITTER_BEARER_TOKEN"), **_url("base_url", settings.twitter_url), **universe
        )
    if settings.filings_source == "sec":
        found["filings_provider"] = SecEdgarProvider(
            user_agent=settings.sec_user_agent, cik_map_file=settings.cik_map_file,
            **_url("base_url", settings.sec_url), **_url("archives_url", settings.sec_archives_url), **universe,
        )  # fmt: skip
    elif settings.filings_source == "sec_files":
        found["filings_provider"] = SecFilesProvider(path=settings.sec_path, **universe)
    series = {"series": list(settings.macro_series)} if settings.macro_series else {}
    if settings.macro_source == "fred":
        found["macro_provider"] = FredProvider(
            api_key=dg.EnvVar("FRED_API_KEY"), **_url("base_url", settings.fred_url), **series
        )
    elif settings.macro_source == "fred_files":
        found["macro_provider"] = FredFilesProvider(path=settings.macro_path, **series)
    return found


def _monitoring(settings: Settings) -> MonitoringResource:
    # the webhook URL often holds a token: prod reads it from the environment at run time
    url = settings.alert_webhook_url
    return MonitoringResource(
        webhook_url=dg.EnvVar("STOCKPRED_ALERT_WEBHOOK_URL") if url and settings.is_prod else url,
        drift_retrain_cooldown_days=settings.drift_retrain_cooldown_days,
        drift_alert_max_age_days=settings.drift_alert_max_age_days,
        dagster_ui_url=settings.dagster_ui_url,
        pushgateway_url=settings.pushgateway_url,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """local/ci get concrete values from the settings; prod reads every endpoint from the environment at run time."""
    tracking = {
        "experiment": settings.mlflow_experiment,
        "artifact_location": settings.mlflow_artifact_location,
        "registered_model": settings.registered_model,
        "optuna_storage": settings.optuna_storage,
        "ui_url": settings.mlflow_ui_url,
    }
    if settings.is_prod:
        return {
            **_providers(settings),
            **_alternative(settings),
            "lake": LakeResource(url=dg.EnvVar("STOCKPRED_LAKE_URL")),
            "duckdb": DuckDBResource(database=settings.duckdb_path),
            "mlflow_resource": MLflowResource(tracking_uri=dg.EnvVar("STOCKPRED_MLFLOW_TRACKING_URI"), **tracking),
            "redis": RedisResource(url=dg.EnvVar("STOCKPRED_REDIS_URL")),
            "monitoring": _monitoring(settings),
        }
    return {
        **_providers(settings),
        **_alternative(settings),
        "lake": LakeResource(url=settings.lake_url),
        "duckdb": DuckDBResource(database=settings.duckdb_path),
        "mlflow_resource": MLflowResource(tracking_uri=settings.mlflow_tracking_uri, **tracking),
        "redis": RedisResource(url=settings.redis_url),
        "monitoring": _monitoring(settings),
    }
