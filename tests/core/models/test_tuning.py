"""Optuna search: resumable from its storage, and a failing trial does not end the study."""

import optuna
import pytest

from stockpred_core.data.simulation import simulate_bars
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.dataset.splits import purged_train_valid
from stockpred_core.dataset.training_set import training_set
from stockpred_core.features.batch import compute_features
from stockpred_core.models import tuning


@pytest.fixture(scope="module")
def segments():
    bars = simulate_bars(7, 15, "2022-01-03", "2023-12-29")
    X, y = training_set(compute_features(bars), forward_returns(bars, 5))
    train, valid = purged_train_valid(X.index, 0.25, 5)
    return X[train.to_numpy()], y[train.to_numpy()], X[valid.to_numpy()], y[valid.to_numpy()]


def test_study_resumes_from_its_storage(segments, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = tuning.tune_lgbm(*segments, horizon=5, n_trials=4, storage=storage, study_name="w1", num_boost_round=100)
    first_values = [t.value for t in first.trials]
    assert len(first_values) == 4
    again = tuning.tune_lgbm(*segments, horizon=5, n_trials=6, storage=storage, study_name="w1", num_boost_round=100)
    assert len(again.trials) == 6 and [t.value for t in again.trials[:4]] == first_values  # resumed, not redone
    assert set(again.best_params) == {
        "num_leaves",
        "learning_rate",
        "min_data_in_leaf",
        "feature_fraction",
        "lambda_l2",
    }


def test_a_failing_trial_does_not_end_the_study(segments, monkeypatch):
    real = tuning.suggest_params

    def flaky(trial):
        if trial.number == 1:
            raise RuntimeError("boom")
        return real(trial)

    monkeypatch.setattr(tuning, "suggest_params", flaky)
    study = tuning.tune_lgbm(*segments, horizon=5, n_trials=3, storage=None, study_name="mem", num_boost_round=100)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
