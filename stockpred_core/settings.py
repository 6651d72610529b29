"""The one place that reads the process environment, with pydantic-settings.

`STOCKPRED_ENV` picks the environment (local | ci | prod); the other STOCKPRED_* variables override single endpoints
(an empty variable counts as unset). Nothing else in the project reads `os.environ` at import time: Dagster code
receives resources built from these settings, the service calls `load_settings()` when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from stockpred_core.features.alpha import FAMILY as LIBRARY
from stockpred_core.features.alternative_catalog import TECHNICAL, check_families

ENVIRONMENTS = ("local", "ci", "prod")
PROVIDERS = ("simulated", "yahoo", "alphavantage", "files")
# alternative data: the sources each kind may use (none of them is on by default)
NEWS_PROVIDERS = ("files", "newsapi")
SOCIAL_PROVIDERS = ("files", "twitter")
FILINGS_SOURCES = ("sec", "sec_files", "none")
MACRO_SOURCES = ("fred", "fred_files", "none")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFIX = "STOCKPRED_"


class SettingsError(ValueError):
    """A setting is missing or has a value the project cannot use."""


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or one a test or tool builds), its
    values stripped of surrounding whitespace (a stray newline in a mounted Secret)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {name: value.strip() for name, value in environ.items() if isinstance(value, str)}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class _FromEnvironment(BaseSettings):
    """Frozen settings whose fields are the STOCKPRED_<FIELD> variables unless a field names its variable."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, populate_by_name=True, frozen=True)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *others: Any, **named: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment comes in through `_read`, from the mapping the caller chose

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable that sets `field`."""
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else PREFIX + field.upper()


_MESSAGES = {  # pydantic error type -> what to say; only these echo the value (numbers and flags are not secrets)
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}


def _read(cls: type[_FromEnvironment], environ: Mapping[str, str] | None) -> Any:
    """`cls` from the environment; a bad value raises SettingsError naming the variable (never echoing a string:
    URLs and keys may hold secrets)."""
    values = _Environment(cls, os.environ if environ is None else environ)()
    try:
        return cls(**values)
    except ValidationError as exc:
        # A default computed from a field that failed is not a second problem: report the field.
        errors = [e for e in exc.errors() if e["type"] != "default_factory_not_called"]
        raise SettingsError("; ".join(_explain(cls, error) for error in errors)) from None


def _explain(cls: type[_FromEnvironment], error: Any) -> str:
    loc = error["loc"]
    names = {cls.variable(f): f for f in cls.model_fields} | {f: f for f in cls.model_fields}
    name = cls.variable(names[loc[0]]) if loc and loc[0] in names else None
    if error["type"] in _MESSAGES and name:
        return f"{name} {_MESSAGES[error['type']]}, got {error['input']!r}"
    if error["type"] == "value_error":  # our validators' messages, which name their variable
        return str(error["ctx"]["error"])
    return f"{name or 'settings'}: {error['msg']}"


def _comma_list(raw: Any) -> Any:
    return tuple(part.strip() for part in raw.split(",") if part.strip()) if isinstance(raw, str) else raw


class ServiceSettings(_FromEnvironment):
    """The prediction service (bento/): security, cache, limits, model polling, shadow scoring."""

    api_keys_file: str | None = None  # JSON list of {"id", "role", "sha256", "rate_per_second"?, "burst"?}
    api_keys: str | None = None  # inline "id:role:sha256[:rate_per_second],..." (a Kubernetes Secret, say)
    cache_ttl_seconds: int = 3600
    # Redis calls fail fast: past this, Redis counts as down and requests are answered from the lake, uncached
    redis_timeout_seconds: float = 0.5
    rate_per_second: float = Field(20.0, validation_alias="STOCKPRED_RATE_LIMIT_PER_SECOND")  # per API key
    rate_burst: int = Field(40, validation_alias="STOCKPRED_RATE_LIMIT_BURST")
    max_body_bytes: int = 1 << 20
    max_batch_tickers: int = 10_000
    max_explain_tickers: int = 1_000  # SHAP for more rows than this per request is refused (it costs seconds)
    model_poll_seconds: float = 30.0  # how often each worker checks the registry's champion alias
    # where a PyTorch champion scores: "auto" a CUDA GPU when torch sees one, else the CPU (the other families: CPU)
    model_device: Literal["auto", "cpu", "cuda"] = "auto"
    shadow_scoring: bool = False  # the challenger scores the same requests; only the champion answers
    audit_log: str = "-"  # "-": stderr, else a file path (one JSON line per request)
    max_feature_age_sessions: int = 2  # older feature vectors are answered but flagged stale
    workers: int = Field(1, validation_alias="STOCKPRED_SERVICE_WORKERS")
    # OAuth 2.0 bearer tokens (stockpred_core.auth), beside the API keys: on when an issuer and its JWKS URL are set
    jwt_issuer: str | None = None  # the exact `iss` the tokens carry
    jwt_audience: str = "stockpred"  # the `aud` they must name
    jwt_jwks_url: str | None = None  # the issuer's public keys (e.g. https://idp.example.com/.well-known/jwks.json)
    jwt_algorithms: Annotated[tuple[str, ...], NoDecode] = ("RS256", "ES256")
    jwt_leeway_seconds: int = 30  # clock skew allowed on exp, nbf, iat
    jwt_jwks_cache_seconds: float = 300.0  # the keys are fetched again after this
    jwt_jwks_min_refresh_seconds: float = 10.0  # at most one fetch per this, however many unknown kids arrive
    jwt_reader_scopes: Annotated[tuple[str, ...], NoDecode] = ("stockpred.predict",)  # any of these: a reader
    jwt_admin_scopes: Annotated[tuple[str, ...], NoDecode] = ("stockpred.admin",)  # ... an admin
    # Canary (bento.canary): this share of clients (sticky per key id or token subject) is answered by the
    # registry's challenger; rolled back to 0 when it errs or slows down past the champion by these margins
    canary_percent: float = Field(0.0, ge=0.0, le=50.0)  # 100% is a promotion: the blocking check's, not ours
    canary_window_seconds: float = 60.0  # the rolling window the variants are compared over
    canary_min_requests: int = 50  # per variant in the window before a verdict
    canary_max_error_rate_margin: float = 0.02  # the canary's error rate may exceed the champion's by this
    canary_max_latency_ratio: float = 2.0  # ... its p99 latency may be this multiple of the champion's
    canary_latency_floor_ms: float = 20.0  # p99s under this are never compared (noise at idle)
    canary_timeout_seconds: float = 2.0  # a canary request slower than this is answered by the champion (a failure)

    @field_validator("jwt_algorithms", "jwt_reader_scopes", "jwt_admin_scopes", mode="before")
    @classmethod
    def _lists(cls, raw: Any) -> Any:
        return _comma_list(raw)

    def jwt_config(self):
        """The JWT verifier's configuration, None when tokens are off (no issuer or no JWKS URL)."""
        if not (self.jwt_issuer or self.jwt_jwks_url):
            return None
        if not (self.jwt_issuer and self.jwt_jwks_url):
            raise ValueError("JWT bearer tokens need both STOCKPRED_JWT_ISSUER and STOCKPRED_JWT_JWKS_URL")
        from stockpred_core.auth import JwtConfig

        return JwtConfig(
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            jwks_url=self.jwt_jwks_url,
            algorithms=self.jwt_algorithms,
            leeway_seconds=self.jwt_leeway_seconds,
            cache_seconds=self.jwt_jwks_cache_seconds,
            min_refresh_seconds=self.jwt_jwks_min_refresh_seconds,
            role_scopes=(("reader", self.jwt_reader_scopes), ("admin", self.jwt_admin_scopes)),
        )


class NotifySettings(_FromEnvironment):
    """Notifications (`stockpred_core.notify`): the channels' endpoints and secrets, and how delivery retries. Secrets
    are SecretStr: they print as '**********' and reach a channel only through `get_secret_value()`."""

    smtp_host: str | None = None  # unset: no email channel
    smtp_port: int = 587
    smtp_username: str | None = None  # unset: no login
    smtp_password: SecretStr | None = None
    smtp_from: str = "stockpred@localhost"
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    slack_webhook_url: SecretStr | None = None  # the webhook a subscriber's `slack: default` posts to
    twilio_account_sid: str | None = None  # unset: no SMS channel
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    webhook_secret: SecretStr | None = None  # set: generic webhooks carry an HMAC-SHA256 signature header
    notify_max_attempts: int = 4  # tries per notification (the first included) before the dead letters
    notify_backoff_seconds: float = 1.0  # the retry policy's base backoff


class CalendarSettings(_FromEnvironment):
    """The trading calendar's first session: partitions, the simulated market and history start there. Read when
    `stockpred_core.data.calendar` is imported (Dagster's partitions are built from it at import), so a process sets
    it before it imports the platform (`stockpred evaluate` sets it from the data's first date)."""

    first_session: date = date(2013, 1, 2)

    @field_validator("first_session")
    @classmethod
    def _not_before_the_calendar(cls, day: date) -> date:
        if day < date(1990, 1, 2):
            raise ValueError(f"STOCKPRED_FIRST_SESSION must be 1990-01-02 or later, got {day.isoformat()}")
        return day


def _under_data_dir(name: str) -> Any:
    return Field(default_factory=lambda d: str(d["data_dir"] / name))


class Settings(_FromEnvironment):
    env: str = "local"
    data_dir: Path = PROJECT_ROOT / "data"
    lake_url: str = _under_data_dir("lake")
    duckdb_path: str = _under_data_dir("catalog.duckdb")
    mlflow_tracking_uri: str = Field(default_factory=lambda d: f"sqlite:///{d['data_dir'] / 'mlflow.db'}")
    mlflow_artifact_location: str | None = Field(
        default_factory=lambda d: None if d.get("env") == "prod" else (d["data_dir"] / "mlartifacts").as_uri(),
        validation_alias="STOCKPRED_MLFLOW_ARTIFACTS",
    )
    mlflow_experiment: str = "stockpred"
    mlflow_ui_url: str = "http://127.0.0.1:5000"  # where people open the MLflow UI: run links in Dagster point there
    registered_model: str = "stockpred"
    redis_url: str | None = None
    simulated_seed: int = Field(7, validation_alias="STOCKPRED_SEED")
    universe_size: int = 50
    # priority order: the first is the primary, the others fill its gaps per ticker
    providers: Annotated[tuple[str, ...], NoDecode] = ("simulated",)
    universe: Annotated[tuple[str, ...], NoDecode] = ()  # tickers for the real providers
    universe_file: str | None = None
    files_path: str | None = None
    yahoo_url: str | None = None
    alphavantage_url: str | None = None
    optuna_storage: str = Field(default_factory=lambda d: f"sqlite:///{d['data_dir'] / 'optuna.db'}")
    index_file: str | None = None  # market index closes for beta/correlation/regime (default: equal-weight index)
    vix_file: str | None = None  # VIX closes (default: realized-volatility proxy)
    # a backfill of the trading-day assets as runs of at most this many partitions (default: one run per backfill):
    # with the Kubernetes run launcher each run is a pod, so ranges are computed in parallel (docs/scaling.md)
    backfill_partitions_per_run: int | None = Field(None, ge=1)
    service: ServiceSettings = Field(default_factory=ServiceSettings)  # load_settings reads it from the same env
    # monitoring: where run failures are posted, how often drift may retrain, links in alerts
    alert_webhook_url: str | None = None
    drift_retrain_cooldown_days: float = 7.0
    drift_alert_max_age_days: float | None = 7.0  # "none": no limit; older drift days neither retrain nor alert
    pushgateway_url: str | None = None  # drift and live-model metrics are pushed here (Prometheus alerts read them)
    dagster_ui_url: str = "http://127.0.0.1:3000"
    simulated_regime_start: str | None = Field(None, validation_alias="STOCKPRED_SIM_REGIME_START")
    # alternative data (docs/alternative_data.md): the sources, where they read, and the families training uses
    news_providers: Annotated[tuple[str, ...], NoDecode] = ()
    news_paths: Annotated[tuple[str, ...], NoDecode] = ()  # files/folders the `files` news provider reads
    social_providers: Annotated[tuple[str, ...], NoDecode] = ()
    social_paths: Annotated[tuple[str, ...], NoDecode] = ()  # JSONL(.gz) files/folders of the `files` provider
    filings_source: str = "none"
    sec_path: str | None = None  # the recorded EDGAR responses `sec_files` reads
    sec_user_agent: str | None = None  # "Name contact@example.com": EDGAR refuses requests without a contact
    cik_map_file: str | None = None  # company_tickers.json or a Symbol,CIK CSV
    news_companies_file: str | None = None  # Name,Symbol CSV: the company names the newsapi provider searches for
    macro_source: str = "none"
    macro_path: str | None = None  # the FRED CSV folder `fred_files` reads
    macro_series: Annotated[tuple[str, ...], NoDecode] = ()  # empty: the provider's default series
    alt_universe: Annotated[tuple[str, ...], NoDecode] = ()  # tickers of the alternative sources (default: universe)
    sentiment_sentences: str | None = None  # the labelled sentences CSV the sentiment model is trained on
    newsapi_url: str | None = None
    twitter_url: str | None = None
    sec_url: str | None = None
    sec_archives_url: str | None = None
    fred_url: str | None = None
    feature_families: Annotated[tuple[str, ...], NoDecode] = (TECHNICAL,)

    @field_validator("env", mode="before")
    @classmethod
    def _known_env(cls, raw: Any) -> Any:
        env = str(raw).strip().lower()
        if env not in ENVIRONMENTS:
            raise ValueError(f"STOCKPRED_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
        return env

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.resolve()

    @field_validator("providers", mode="before")
    @classmethod
    def _known_providers(cls, raw: Any) -> Any:
        providers = tuple(p.lower() for p in _comma_list(raw))
        unknown = [p for p in providers if p not in PROVIDERS]
        if unknown or not providers:
            raise ValueError(f"STOCKPRED_PROVIDERS takes a comma list of {', '.join(PROVIDERS)}, got {unknown or '()'}")
        return providers

    @field_validator("universe", "alt_universe", mode="before")
    @classmethod
    def _tickers(cls, raw: Any) -> Any:
        return tuple(t.upper() for t in _comma_list(raw))

    @field_validator("news_paths", "social_paths", "macro_series", mode="before")
    @classmethod
    def _lists(cls, raw: Any) -> Any:
        return _comma_list(raw)

    @field_validator("news_providers", "social_providers", mode="before")
    @classmethod
    def _known_alt_providers(cls, raw: Any, info: ValidationInfo) -> Any:
        known = NEWS_PROVIDERS if info.field_name == "news_providers" else SOCIAL_PROVIDERS
        providers = tuple(dict.fromkeys(p.lower() for p in _comma_list(raw)))
        unknown = [p for p in providers if p not in known]
        if unknown:
            variable = cls.variable(info.field_name)
            raise ValueError(f"{variable} takes a comma list of {', '.join(known)}, got {unknown}")
        return providers

    @field_validator("filings_source", "macro_source", mode="before")
    @classmethod
    def _known_alt_source(cls, raw: Any, info: ValidationInfo) -> Any:
        known = FILINGS_SOURCES if info.field_name == "filings_source" else MACRO_SOURCES
        source = str(raw).strip().lower()
        if source not in known:
            raise ValueError(f"{cls.variable(info.field_name)} must be one of {', '.join(known)}, got {source!r}")
        return source

    @field_validator("feature_families", mode="before")
    @classmethod
    def _known_families(cls, raw: Any) -> Any:
        names = _comma_list(raw)
        library = (LIBRARY,) if LIBRARY in names else ()
        try:
            return (TECHNICAL, *library, *check_families([n for n in names if n != LIBRARY]))
        except ValueError as exc:
            raise ValueError(f"STOCKPRED_FEATURE_FAMILIES: {exc} (or {LIBRARY!r}, the Alpha158-like library)") from None

    @field_validator("drift_alert_max_age_days", mode="before")
    @classmethod
    def _none_means_no_limit(cls, raw: Any) -> Any:
        return None if isinstance(raw, str) and raw.lower() == "none" else raw

    @model_validator(mode="after")
    def _prod_endpoints(self) -> Settings:
        if self.env == "prod":
            missing = [self.variable(f) for f in ("lake_url", "mlflow_tracking_uri") if f not in self.model_fields_set]
            if missing:
                raise ValueError(f"STOCKPRED_ENV=prod needs {', '.join(missing)} to be set")
        return self

    @model_validator(mode="after")
    def _sources_say_where_they_read(self) -> Settings:
        needs = {
            "STOCKPRED_NEWS_PATHS": "files" in self.news_providers and not self.news_paths,
            "STOCKPRED_SOCIAL_PATHS": "files" in self.social_providers and not self.social_paths,
            "STOCKPRED_SEC_USER_AGENT": self.filings_source == "sec" and not self.sec_user_agent,
            "STOCKPRED_CIK_MAP_FILE": self.filings_source == "sec" and not self.cik_map_file,
            "STOCKPRED_SEC_PATH": self.filings_source == "sec_files" and not self.sec_path,
            "STOCKPRED_MACRO_PATH": self.macro_source == "fred_files" and not self.macro_path,
        }
        missing = [name for name, lacking in needs.items() if lacking]
        if missing:
            raise ValueError(f"the configured alternative sources need {', '.join(missing)} to be set")
        return self

    @model_validator(mode="after")
    def _families_have_sources(self) -> Settings:
        unsourced = [family for family in self.alt_families if family not in self.alt_sources]
        if unsourced:
            raise ValueError(
                f"STOCKPRED_FEATURE_FAMILIES names {', '.join(unsourced)} but no source of "
                f"{'it' if len(unsourced) == 1 else 'them'} is configured (STOCKPRED_NEWS_PROVIDERS, "
                "STOCKPRED_SOCIAL_PROVIDERS, STOCKPRED_FILINGS_SOURCE, STOCKPRED_MACRO_SOURCE)"
            )
        return self

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def alt_families(self) -> list[str]:
        """The alternative families of `feature_families` (technical and the library left out)."""
        return check_families([f for f in self.feature_families if f != LIBRARY])

    @property
    def alt_sources(self) -> dict[str, list[str]]:
        """family -> the configured providers' names (the `<name>` of raw_<family>_<name>); families with none are
        left out."""
        sources = {
            "news": list(self.news_providers),
            "social": list(self.social_providers),
            "filings": [] if self.filings_source == "none" else [self.filings_source],
            "macro": [] if self.macro_source == "none" else [self.macro_source],
        }
        return {family: names for family, names in sources.items() if names}


def environment_variables() -> set[str]:
    """Every variable the settings read (the docs and the deploy config are checked against this set)."""
    classes = (Settings, ServiceSettings, NotifySettings, CalendarSettings)
    return {cls.variable(field) for cls in classes for field in cls.model_fields if field != "service"}


def load_service_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """The prediction service's STOCKPRED_* variables (also read alone, when the service module is imported)."""
    return _read(ServiceSettings, environ)


def load_notify_settings(environ: Mapping[str, str] | None = None) -> NotifySettings:
    """The notification channels' STOCKPRED_* variables (read by `stockpred-notify` and the `insights` asset)."""
    return _read(NotifySettings, environ)


def load_calendar_settings(environ: Mapping[str, str] | None = None) -> CalendarSettings:
    """The calendar's STOCKPRED_FIRST_SESSION (read once, when `stockpred_core.data.calendar` is imported)."""
    return _read(CalendarSettings, environ)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `environ` (default: the process environment)."""
    return _read(Settings, environ).model_copy(update={"service": load_service_settings(environ)})
