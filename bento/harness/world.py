"""A served world without the pipeline: synthetic online features (Redis and the lake), a small champion fitted and
registered in a real MLflow registry, and API keys; the settings and environment to serve it with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import redis

from bento.security import hash_key, new_token
from stockpred_core.dataset.labels import DEFAULT_LABEL
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION, RAW_COLUMNS
from stockpred_core.io.lake import Lake
from stockpred_core.io.model_card import FAMILY_TAG
from stockpred_core.io.model_registry import CHAMPION_ALIAS, configure_mlflow, log_forecaster
from stockpred_core.io.online_store import push_vectors
from stockpred_core.models.baselines import LinearForecaster
from stockpred_core.models.forecaster import Forecaster
from stockpred_core.models.lgbm import LGBMForecaster
from stockpred_core.settings import Settings, load_settings

FEATURE_DATE = "2025-06-27"
HORIZON = 5
KEYS = {  # id -> (role, rate per second or None for the default)
    "reader": ("reader", 10_000.0),
    "admin": ("admin", 10_000.0),
    "slow": ("reader", 1.0),
}


def tickers(n: int) -> list[str]:
    return [f"T{i:05d}" for i in range(n)]


def online_frame(n: int, date: str = FEATURE_DATE, seed: int = 0) -> pd.DataFrame:
    """One synthetic feature vector per ticker: the technical set and raw levels as `online_features` writes them
    (it appends the Alpha158-like library too, which the harness champions do not take)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    for name in RAW_COLUMNS:
        frame[name] = rng.uniform(20, 400, size=n)
    frame.insert(0, "ticker", tickers(n))
    frame.insert(0, "date", pd.Timestamp(date))
    frame["feature_set_version"] = FEATURE_SET_VERSION
    return frame


def training_data(rows: int = 4000, seed: int = 1) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    y = 0.01 * X["ret_5"] - 0.005 * X["rsi_14"] + 0.02 * rng.normal(size=rows)
    return X, pd.Series(y.to_numpy(), index=X.index)


def fit(family: str = "lightgbm", seed: int = 1, rounds: int = 60) -> Forecaster:
    X, y = training_data(seed=seed)
    if family == "lightgbm":
        return LGBMForecaster(num_boost_round=rounds, seed=seed, params={"min_data_in_leaf": 50}).fit(X, y)
    if family == "torch_mlp":  # PyTorch: only when asked for (an optional extra)
        from stockpred_core.models.neural import TorchMLPForecaster

        return TorchMLPForecaster(epochs=3, seed=seed).fit(X, y)
    return LinearForecaster(alpha=1.0).fit(X, y)


def register(
    settings: Settings,
    model: Forecaster,
    alias: str | None = CHAMPION_ALIAS,
    label: str = DEFAULT_LABEL,
    *,
    example: pd.DataFrame | None = None,
    feature_set_version: str = FEATURE_SET_VERSION,
    horizon: int = HORIZON,
) -> str:
    """Log `model` as a new version of the registered model (with what the service reads) and move `alias`;
    `example`: rows of the model's columns (default: the technical set's)."""
    configure_mlflow(settings.mlflow_tracking_uri, settings.mlflow_experiment, settings.mlflow_artifact_location)
    X = training_data(rows=5)[0] if example is None else example
    with mlflow.start_run():
        mlflow.log_params({"horizon": horizon, "feature_set_version": feature_set_version, "label": label})
        mlflow.set_tag(FAMILY_TAG, model.family)
        mlflow.log_metrics({"test_residual_q05": -0.03, "test_residual_q95": 0.035})
        info = log_forecaster(model, settings.registered_model, X)
    version = str(info.registered_model_version)
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(settings.registered_model, alias, version)
    return version


def set_alias(settings: Settings, alias: str, version: str) -> None:
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    client.set_registered_model_alias(settings.registered_model, alias, version)


@dataclass
class World:
    root: Path
    env: dict[str, str]
    settings: Settings
    keys: dict[str, str]  # key id -> token
    features: pd.DataFrame


def build_world(
    root: Path,
    n_tickers: int = 50,
    redis_url: str | None = None,
    family: str = "lightgbm",
    extra_env: dict[str, str] | None = None,
    keys: dict[str, tuple[str, float | None]] = KEYS,
    rounds: int = 60,
) -> World:
    root.mkdir(parents=True, exist_ok=True)
    tokens = {key_id: new_token() for key_id in keys}
    entries = []
    for key_id, (role, rate) in keys.items():
        entry = {"id": key_id, "role": role, "sha256": hash_key(tokens[key_id])}
        if rate:
            entry.update(rate_per_second=rate, burst=max(1, int(rate)))
        entries.append(entry)
    (root / "api_keys.json").write_text(json.dumps(entries))
    env = {
        "STOCKPRED_ENV": "local",
        "STOCKPRED_DATA_DIR": str(root),
        "STOCKPRED_API_KEYS_FILE": str(root / "api_keys.json"),
        "STOCKPRED_AUDIT_LOG": str(root / "audit.log"),
        "STOCKPRED_MODEL_POLL_SECONDS": "600",
        **({"STOCKPRED_REDIS_URL": redis_url} if redis_url else {}),
        **(extra_env or {}),
    }
    settings = load_settings(env)
    features = online_frame(n_tickers)
    Lake(settings.lake_url).write_table("serving", "online_features", features)
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        push_vectors(client, features)
    register(settings, fit(family, rounds=rounds))
    return World(root, env, settings, tokens, features)
