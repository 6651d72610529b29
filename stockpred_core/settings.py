"""The one place that reads the process environment.

`STOCKPRED_ENV` picks the environment (local | ci | prod); the other variables override single endpoints.
Nothing else in the project reads `os.environ` at import time: Dagster code receives resources built
from these settings, the service calls `load_settings()` when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENVIRONMENTS = ("local", "ci", "prod")
PROVIDERS = ("simulated", "yahoo", "alphavantage", "files")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """A setting is missing or has a value the project cannot use."""


@dataclass(frozen=True)
class ServiceSettings:
    """The prediction service (bento/): security, cache, limits, model polling, shadow scoring."""

    api_keys_file: str | None = None  # JSON list of {"id", "role", "sha256", "rate_per_second"?, "burst"?}
    api_keys: str | None = None  # inline "id:role:sha256[:rate_per_second],..." (a Kubernetes Secret, say)
    cache_ttl_seconds: int = 3600
    rate_per_second: float = 20.0  # per API key, unless its entry says otherwise
    rate_burst: int = 40
    max_body_bytes: int = 1 << 20
    max_batch_tickers: int = 10_000
    max_explain_tickers: int = 1_000  # SHAP for more rows than this per request is refused (it costs seconds)
    model_poll_seconds: float = 30.0  # how often each worker checks the registry's champion alias
    shadow_scoring: bool = False  # the challenger scores the same requests; only the champion answers
    audit_log: str = "-"  # "-": stderr, else a file path (one JSON line per request)
    max_feature_age_sessions: int = 2  # older feature vectors are answered but flagged stale
    workers: int = 1


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    lake_url: str
    duckdb_path: str
    mlflow_tracking_uri: str
    mlflow_artifact_location: str | None
    mlflow_experiment: str
    mlflow_ui_url: str  # where people open the MLflow UI: run links in Dagster metadata point there
    registered_model: str
    redis_url: str | None
    simulated_seed: int
    universe_size: int
    providers: tuple[str, ...]  # priority order: the first is the primary, the others fill its gaps per ticker
    universe: tuple[str, ...]  # tickers for the real providers
    universe_file: str | None
    files_path: str | None
    yahoo_url: str | None
    alphavantage_url: str | None
    optuna_storage: str  # where Optuna studies live, so a tuning run resumes
    index_file: str | None  # market index closes for beta/correlation/regime (default: equal-weight index)
    vix_file: str | None  # VIX closes (default: realized-volatility proxy)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    # monitoring: where run failures are posted, how often drift may retrain, links in alerts
    alert_webhook_url: str | None = None
    drift_retrain_cooldown_days: float = 7.0
    drift_alert_max_age_days: float | None = 7.0  # older drift days neither retrain nor reach the Pushgateway
    pushgateway_url: str | None = None  # drift and live-model metrics are pushed here (Prometheus alerts read them)
    dagster_ui_url: str = "http://127.0.0.1:3000"
    simulated_regime_start: str | None = None  # switch the simulated market's bear regime on from this date

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    return raw in ("1", "true", "yes", "on")


def load_service_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """The prediction service's STOCKPRED_* variables (also read alone, when the service module is imported)."""
    environ = os.environ if environ is None else environ
    d = ServiceSettings()
    return ServiceSettings(
        api_keys_file=environ.get("STOCKPRED_API_KEYS_FILE") or None,
        api_keys=environ.get("STOCKPRED_API_KEYS") or None,
        cache_ttl_seconds=_int(environ, "STOCKPRED_CACHE_TTL_SECONDS", d.cache_ttl_seconds),
        rate_per_second=_float(environ, "STOCKPRED_RATE_LIMIT_PER_SECOND", d.rate_per_second),
        rate_burst=_int(environ, "STOCKPRED_RATE_LIMIT_BURST", d.rate_burst),
        max_body_bytes=_int(environ, "STOCKPRED_MAX_BODY_BYTES", d.max_body_bytes),
        max_batch_tickers=_int(environ, "STOCKPRED_MAX_BATCH_TICKERS", d.max_batch_tickers),
        max_explain_tickers=_int(environ, "STOCKPRED_MAX_EXPLAIN_TICKERS", d.max_explain_tickers),
        model_poll_seconds=_float(environ, "STOCKPRED_MODEL_POLL_SECONDS", d.model_poll_seconds),
        shadow_scoring=_bool(environ, "STOCKPRED_SHADOW_SCORING", d.shadow_scoring),
        audit_log=environ.get("STOCKPRED_AUDIT_LOG") or d.audit_log,
        max_feature_age_sessions=_int(environ, "STOCKPRED_MAX_FEATURE_AGE_SESSIONS", d.max_feature_age_sessions),
        workers=_int(environ, "STOCKPRED_SERVICE_WORKERS", d.workers),
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `environ` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    env = environ.get("STOCKPRED_ENV", "local").strip().lower() or "local"
    if env not in ENVIRONMENTS:
        raise SettingsError(f"STOCKPRED_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    data_dir = Path(environ.get("STOCKPRED_DATA_DIR") or PROJECT_ROOT / "data").resolve()
    if env == "prod":
        missing = [n for n in ("STOCKPRED_LAKE_URL", "STOCKPRED_MLFLOW_TRACKING_URI") if not environ.get(n)]
        if missing:
            raise SettingsError(f"STOCKPRED_ENV=prod needs {', '.join(missing)} to be set")

    providers = tuple(
        p.strip().lower() for p in environ.get("STOCKPRED_PROVIDERS", "simulated").split(",") if p.strip()
    )
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown or not providers:
        raise SettingsError(f"STOCKPRED_PROVIDERS takes a comma list of {', '.join(PROVIDERS)}, got {unknown or '()'}")
    return Settings(
        env=env,
        data_dir=data_dir,
        lake_url=environ.get("STOCKPRED_LAKE_URL") or str(data_dir / "lake"),
        duckdb_path=environ.get("STOCKPRED_DUCKDB_PATH") or str(data_dir / "catalog.duckdb"),
        mlflow_tracking_uri=environ.get("STOCKPRED_MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir / 'mlflow.db'}",
        mlflow_artifact_location=environ.get("STOCKPRED_MLFLOW_ARTIFACTS")
        or (None if env == "prod" else (data_dir / "mlartifacts").as_uri()),
        mlflow_experiment=environ.get("STOCKPRED_MLFLOW_EXPERIMENT") or "stockpred",
        mlflow_ui_url=environ.get("STOCKPRED_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
        registered_model=environ.get("STOCKPRED_REGISTERED_MODEL") or "stockpred",
        redis_url=environ.get("STOCKPRED_REDIS_URL") or None,
        simulated_seed=_int(environ, "STOCKPRED_SEED", 7),
        universe_size=_int(environ, "STOCKPRED_UNIVERSE_SIZE", 50),
        providers=providers,
        universe=tuple(t.strip().upper() for t in environ.get("STOCKPRED_UNIVERSE", "").split(",") if t.strip()),
        universe_file=environ.get("STOCKPRED_UNIVERSE_FILE") or None,
        files_path=environ.get("STOCKPRED_FILES_PATH") or None,
        yahoo_url=environ.get("STOCKPRED_YAHOO_URL") or None,
        alphavantage_url=environ.get("STOCKPRED_ALPHAVANTAGE_URL") or None,
        optuna_storage=environ.get("STOCKPRED_OPTUNA_STORAGE") or f"sqlite:///{data_dir / 'optuna.db'}",
        index_file=environ.get("STOCKPRED_INDEX_FILE") or None,
        vix_file=environ.get("STOCKPRED_VIX_FILE") or None,
        service=load_service_settings(environ),
        alert_webhook_url=environ.get("STOCKPRED_ALERT_WEBHOOK_URL") or None,
        drift_retrain_cooldown_days=_float(environ, "STOCKPRED_DRIFT_RETRAIN_COOLDOWN_DAYS", 7.0),
        drift_alert_max_age_days=None
        if environ.get("STOCKPRED_DRIFT_ALERT_MAX_AGE_DAYS", "").strip().lower() == "none"
        else _float(environ, "STOCKPRED_DRIFT_ALERT_MAX_AGE_DAYS", 7.0),
        pushgateway_url=environ.get("STOCKPRED_PUSHGATEWAY_URL") or None,
        dagster_ui_url=environ.get("STOCKPRED_DAGSTER_UI_URL") or "http://127.0.0.1:3000",
        simulated_regime_start=environ.get("STOCKPRED_SIM_REGIME_START") or None,
    )
