"""Train one model family on a window of history: purged segments, walk-forward folds, Optuna for LightGBM.

The window's dates are cut, oldest to newest, into train | gap | valid | gap | test (gap = horizon + embargo):
- walk-forward folds inside the train segment measure the family out of sample (per-fold metrics; their mean
  ranks the families when the challenger is picked);
- Optuna (LightGBM) searches on train/valid only;
- the final model fits on train, early-stops on valid and is reported on test, which nothing else has seen; the
  promotion gate compares challenger and champion on that test segment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stockpred_core.dataset.labels import DEFAULT_HORIZON, DEFAULT_LABEL, forward_returns, make_label
from stockpred_core.dataset.splits import gap_sessions, purged_train_valid, walk_forward_folds
from stockpred_core.dataset.training_set import families_of, training_set
from stockpred_core.evaluation.backtest import evaluate
from stockpred_core.features.alternative_catalog import ALT_COLUMNS
from stockpred_core.features.catalog import FEATURE_COLUMNS
from stockpred_core.models.families import make_forecaster  # importers of it from here still find it
from stockpred_core.models.forecaster import Forecaster
from stockpred_core.models.lgbm import LGBMForecaster
from stockpred_core.models.tuning import tune_lgbm

MIN_TICKERS = 5  # rank IC and the long-short portfolio need a cross-section
SIGNAL_METRICS = ("ic", "rank_ic", "rank_ic_t", "icir", "rank_icir", "hit_rate", "mse_vs_naive", "sharpe")
IMPORTANCE_ROWS = 2000  # test rows the occlusion importance of non-tree families averages over


@dataclass(frozen=True)
class TrainingSpec:
    horizon: int = DEFAULT_HORIZON
    label: str = DEFAULT_LABEL  # "return" | "rank" (cross-sectional rank of the forward return)
    embargo: int = 5  # sessions added to the horizon-long purge between segments
    seed: int = 0
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    n_folds: int = 3  # walk-forward folds inside the train segment

    @property
    def gap(self) -> int:
        return gap_sessions(self.horizon, self.embargo)


@dataclass(frozen=True)
class LabelledSet:
    X: pd.DataFrame  # features by (date, ticker)
    y: pd.Series  # the training target (return or rank)
    returns: pd.Series  # the forward return the target derives from: every metric is measured against it
    dropped: tuple[str, ...] = ()  # alternative columns asked for that hold no value in the window


@dataclass(frozen=True)
class TrainingResult:
    family: str
    model: Forecaster
    params: dict  # the model's configuration (LightGBM: the study's best parameters when tuned)
    test_metrics: dict[str, float]
    fold_metrics: list[dict]  # per walk-forward fold: its dates and signal metrics
    cv_metrics: dict[str, float]  # mean of the fold metrics
    segments: dict[str, str]  # segment -> "first..last" dates
    sizes: dict[str, int]
    residual_quantiles: dict[str, float]  # of test residuals (label - prediction): a conformal interval
    importance: pd.Series  # per feature, largest first (LightGBM: total gain; others: mean |occlusion effect|)
    fingerprint: str  # sha256 of the rows and labels trained and tested on: same data, same fingerprint
    input_example: pd.DataFrame  # a few test rows (for the MLflow signature)
    trials: list[dict] = field(default_factory=list)  # the Optuna study's trials (LightGBM when tuned)


def fingerprint(X: pd.DataFrame, y: pd.Series) -> str:
    """A content hash of a training set (its index, features and labels)."""
    hashed = pd.util.hash_pandas_object(X.join(y.rename("__label__")), index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _span(index: pd.MultiIndex) -> str:
    dates = index.get_level_values("date")
    return f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}"


def labelled_set(
    features: pd.DataFrame,
    bars: pd.DataFrame,
    horizon: int,
    label: str = DEFAULT_LABEL,
    columns: Sequence[str] = FEATURE_COLUMNS,
) -> LabelledSet:
    """The `columns` of `features` joined with their label; refuses a window a model cannot honestly be trained on."""
    empty = [c for c in FEATURE_COLUMNS if c in features.columns and len(features) and features[c].isna().all()]
    if empty:
        raise ValueError(
            f"features without a single value in the window (a window shorter than their warm-up, or a broken "
            f"feature): {empty}"
        )
    X, y = training_set(features, make_label(bars, horizon, label), columns)
    X, dropped = _covered_columns(X)
    if len(X) == 0:
        raise ValueError("no rows with both complete features and a known label: widen the training window")
    tickers = X.index.get_level_values("ticker").nunique()
    if tickers < MIN_TICKERS:
        raise ValueError(
            f"{tickers} tickers are too few for cross-sectional metrics: at least {MIN_TICKERS} are needed"
        )
    returns = y if label == "return" else forward_returns(bars, horizon).loc[X.index]
    return LabelledSet(X, y, returns, dropped)


def _covered_columns(X: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """X without its alternative columns that hold no value in any row (e.g. a dispersion where a source gives one
    item a day: nothing to learn from), and those columns; ValueError when a family of X covers no row at all."""
    alt = [c for c in X.columns if c in ALT_COLUMNS]
    if not alt or X.empty:
        return X, ()
    uncovered = [f for f in families_of(alt) if not (X[f"{f}_covered"] > 0).any()]
    if uncovered:
        raise ValueError(
            f"no row of the window is covered by the alternative families {uncovered}: materialize alt_features "
            "from their sources for the window, or leave the families out of the recipe"
        )
    empty = tuple(c for c in alt if X[c].isna().all())
    return X.drop(columns=list(empty)), empty


def fit_early_stopped(
    factory: Callable[[], Forecaster], X: pd.DataFrame, y: pd.Series, gap: int, valid_fraction: float = 0.15
) -> Forecaster:
    """Fit on the older rows of (X, y), early-stopping on its newest `valid_fraction` of dates after a gap."""
    train, valid = purged_train_valid(X.index, valid_fraction, gap)
    t, v = train.to_numpy(), valid.to_numpy()
    return factory().fit(X[t], y[t], X[v], y[v])


def walk_forward_metrics(
    factory: Callable[[], Forecaster], data: LabelledSet, n_folds: int, horizon: int, gap: int
) -> list[dict]:
    """Expanding-window folds tiling the newer half of `data`'s dates: each fold's model sees only dates before its
    test block (minus the gap) and is measured on that block."""
    dates = pd.DatetimeIndex(data.X.index.get_level_values("date").unique()).sort_values()
    folds = walk_forward_folds(data.X.index, n_folds, len(dates) // 2, gap)
    row_dates = data.X.index.get_level_values("date")
    results = []
    for number, fold in enumerate(folds):
        seen = np.asarray(row_dates <= fold.train_end)
        block = np.asarray((row_dates >= fold.test_start) & (row_dates <= fold.test_end))
        model = fit_early_stopped(factory, data.X[seen], data.y[seen], gap)
        pred = model.predict(data.X[block])
        metrics = dict(evaluate(pred, data.returns, horizon).metrics)
        if pred.nunique() <= 1:  # e.g. boosting stopped before its first split: no ranking, i.e. no information
            metrics.update({name: 0.0 for name in ("ic", "rank_ic", "rank_ic_t", "icir", "rank_icir")})
        results.append(
            {
                "fold": number,
                "train_end": f"{fold.train_end:%Y-%m-%d}",
                "test": f"{fold.test_start:%Y-%m-%d}..{fold.test_end:%Y-%m-%d}",
                "rows": int(block.sum()),
                **{name: float(metrics[name]) for name in SIGNAL_METRICS},
            }
        )
    return results


def importance_of(model: Forecaster, X: pd.DataFrame) -> pd.Series:
    """LightGBM: total split gain per feature; other families: mean absolute occlusion effect over rows of X."""
    if isinstance(model, LGBMForecaster):
        values = model.booster_or_raise().feature_importance("gain")
    else:
        sample = X.iloc[:: max(1, len(X) // IMPORTANCE_ROWS)]
        values = model.contributions(sample).drop(columns="bias").abs().mean().to_numpy()
    return pd.Series(values, index=model.feature_names, name="importance").sort_values(ascending=False)


def train_model(
    family: str,
    data: LabelledSet,
    spec: TrainingSpec = TrainingSpec(),
    params: dict | None = None,
    n_trials: int = 0,
    storage: str | None = None,
    study_name: str = "lgbm",
    callbacks: Sequence[Callable] = (),
) -> TrainingResult:
    """Fold metrics, (LightGBM) tuning, the final fit and its test metrics for one family; nothing is logged here."""
    gap = spec.gap
    X, y = data.X, data.y
    rest, test = purged_train_valid(X.index, spec.test_fraction, gap)
    rest, test = rest.to_numpy(), test.to_numpy()
    X_rest, y_rest = X[rest], y[rest]
    train, valid = purged_train_valid(X_rest.index, spec.valid_fraction / (1 - spec.test_fraction), gap)
    train, valid = train.to_numpy(), valid.to_numpy()
    X_train, y_train, X_valid, y_valid = X_rest[train], y_rest[train], X_rest[valid], y_rest[valid]
    params, trials = dict(params or {}), []
    if n_trials > 0:
        if family != "lightgbm":
            raise ValueError(f"Optuna tuning is implemented for lightgbm, not {family}")
        num_boost_round = params.get("num_boost_round", LGBMForecaster.num_boost_round)
        study = tune_lgbm(
            X_train, y_train, X_valid, y_valid, spec.horizon, n_trials, storage, study_name, spec.seed,
            num_boost_round, callbacks,
        )  # fmt: skip
        trials = [
            {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params}
            for t in study.trials
        ]
        if any(t["state"] == "complete" for t in trials):
            params["params"] = {**params.get("params", {}), **study.best_params}

    def factory() -> Forecaster:
        return make_forecaster(family, params, spec.seed)

    train_part = LabelledSet(X_train, y_train, data.returns.loc[X_train.index])
    fold_metrics = walk_forward_metrics(factory, train_part, spec.n_folds, spec.horizon, gap)
    model = factory().fit(X_train, y_train, X_valid, y_valid)
    X_test = X[test]
    pred = model.predict(X_test)
    residuals = y[test] - pred
    segments = {"train": X_train.index, "valid": X_valid.index, "test": X_test.index}
    return TrainingResult(
        family=family,
        model=model,
        params=model.config(),
        test_metrics=evaluate(pred, data.returns, spec.horizon).metrics,
        fold_metrics=fold_metrics,
        cv_metrics={name: float(np.nanmean([f[name] for f in fold_metrics])) for name in SIGNAL_METRICS},
        segments={name: _span(index) for name, index in segments.items()},
        sizes={name: len(index) for name, index in segments.items()},
        residual_quantiles={"q05": float(residuals.quantile(0.05)), "q95": float(residuals.quantile(0.95))},
        importance=importance_of(model, X_test),
        fingerprint=fingerprint(X, y),
        input_example=X_test.head(5),
        trials=trials,
    )
