"""The champion model and its online features, behind `predict(ticker)`; no HTTP and no Dagster here."""

from __future__ import annotations

import threading
import time

import pandas as pd

from bento.schemas import Contribution, Prediction
from stockpred_assets.core.features import FEATURE_COLUMNS
from stockpred_resources.registry import ChampionModel, load_champion
from stockpred_resources.settings import Settings
from stockpred_resources.storage import Lake

RELOAD_SECONDS = 60.0
TOP_CONTRIBUTIONS = 5


class UnknownTicker(LookupError):
    pass


class NoModel(RuntimeError):
    pass


class Predictor:
    """Loads the champion from the MLflow registry and the latest feature vectors from the lake; reloads both
    at most every RELOAD_SECONDS so a new champion or a new trading day is picked up without a restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.champion: ChampionModel | None = None
        self.vectors: pd.DataFrame | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> bool:
        """(Re)load the champion and online features when stale; True when a model is loaded."""
        with self._lock:
            if force or time.monotonic() - self._loaded_at >= RELOAD_SECONDS or self.champion is None:
                champion = load_champion(self.settings.mlflow_tracking_uri, self.settings.registered_model)
                if champion is not None:
                    missing = set(champion.model.feature_names) - set(FEATURE_COLUMNS)
                    if missing:
                        raise NoModel(
                            f"champion v{champion.version} needs features this service lacks: {sorted(missing)}"
                        )
                    try:
                        vectors = Lake(self.settings.lake_url).read_table("serving", "online_features")
                    except FileNotFoundError:
                        return self.champion is not None  # online_features not materialized yet: not ready
                    served = set(vectors.get("feature_set_version", pd.Series(dtype=str)).unique())
                    if champion.feature_set_version and served and served != {champion.feature_set_version}:
                        raise NoModel(
                            f"champion v{champion.version} was trained on feature set "
                            f"{champion.feature_set_version}, online features are {sorted(served)}: "
                            "materialize online_features after the features backfill"
                        )
                    self.champion, self.vectors = champion, vectors.set_index("ticker")
                self._loaded_at = time.monotonic()
            return self.champion is not None

    def predict(self, ticker: str) -> Prediction:
        self.refresh()
        if self.champion is None or self.vectors is None:
            raise NoModel(f"no champion model in the registry for {self.settings.registered_model} yet")
        ticker = ticker.strip().upper()
        if ticker not in self.vectors.index:
            raise UnknownTicker(
                f"unknown ticker {ticker!r}: no online features for it ({len(self.vectors)} tickers known)"
            )
        row = self.vectors.loc[[ticker]]
        model = self.champion.model
        X = row[model.feature_names]
        predicted = float(model.predict(X).iloc[0])
        contrib = model.contributions(X).iloc[0].drop("bias")
        top = contrib.reindex(contrib.abs().sort_values(ascending=False).index)[:TOP_CONTRIBUTIONS]
        last_close = float(row["close"].iloc[0])
        return Prediction(
            ticker=ticker,
            predicted_return=predicted,
            predicted_price=last_close * (1.0 + predicted),
            interval_low=predicted + self.champion.residual_q05,
            interval_high=predicted + self.champion.residual_q95,
            horizon_sessions=self.champion.horizon,
            last_close=last_close,
            feature_date=f"{pd.Timestamp(row['date'].iloc[0]):%Y-%m-%d}",
            model_name=self.champion.name,
            model_version=self.champion.version,
            top_contributions=[
                Contribution(feature=f, value=float(X[f].iloc[0]), contribution=float(c)) for f, c in top.items()
            ],
        )
