"""Hyper-parameter search for LightGBM with Optuna: TPE sampling, median pruning, a resumable study.

The objective is the validation segment's daily rank IC (the test segment is never seen by the search). A study kept
in a database (SQLite locally, Postgres in production) resumes where it stopped; a trial that fails is recorded as
failed and the study goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightgbm as lgb
import optuna
import pandas as pd

from stockpred_core.evaluation.backtest import evaluate
from stockpred_core.models.lgbm import DEFAULT_LGBM_PARAMS, LGBMForecaster

CHECKPOINT = 50  # boosting rounds between the intermediate values the pruner sees


def suggest_params(trial: optuna.Trial) -> dict:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 50, 1000, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 0.1, 100.0, log=True),
    }


def _pruning_callback(trial: optuna.Trial, X_valid: pd.DataFrame, y_valid: pd.Series, horizon: int):
    """Report the validation rank IC every CHECKPOINT rounds and stop a trial the median pruner gives up on."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        step = env.iteration + 1
        if step % CHECKPOINT:
            return
        values = env.model.predict(X_valid, num_iteration=step)
        rank_ic = evaluate(pd.Series(values, index=X_valid.index), y_valid, horizon).metrics["rank_ic"]
        trial.report(rank_ic, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"rank IC {rank_ic:.4f} at round {step} is below the median")

    return callback


def tune_lgbm(
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_valid: pd.DataFrame,
    y_valid: pd.Series,
    horizon: int,
    n_trials: int,
    storage: str | None,
    study_name: str,
    seed: int = 0,
    num_boost_round: int = 300,
    callbacks: Sequence[Callable] = (),
) -> optuna.Study:
    """Run (or resume) the study until it holds `n_trials` finished trials; returns it (best params: best_params)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=CHECKPOINT),
    )

    # One Dataset for every trial: its bins must not be pre-filtered for the first trial's min_data_in_leaf.
    train = lgb.Dataset(X_train, y_train, free_raw_data=False, params={"feature_pre_filter": False})
    valid = lgb.Dataset(X_valid, y_valid, reference=train, params={"feature_pre_filter": False})

    def objective(trial: optuna.Trial) -> float:
        params = {**DEFAULT_LGBM_PARAMS, **suggest_params(trial), "seed": seed}
        stop = lgb.early_stopping(LGBMForecaster.early_stopping_rounds, verbose=False)
        prune = _pruning_callback(trial, X_valid, y_valid, horizon)
        booster = lgb.train(params, train, num_boost_round, valid_sets=[valid], callbacks=[stop, prune])
        return evaluate(LGBMForecaster(booster=booster).predict(X_valid), y_valid, horizon).metrics["rank_ic"]

    finished = [
        t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    remaining = max(n_trials - len(finished), 0)
    study.optimize(objective, n_trials=remaining, catch=(Exception,), callbacks=list(callbacks))
    return study
