"""A regression set with a known signal, for measuring the model families apart from any market (benchmarks/gpu.py,
tests/gpu). numpy and pandas only, unlike the simulated market (`simulation.py`): it runs on the lent GPU machine,
which has neither pandera nor the exchange calendars."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


def simulate_signal(rows: int, columns: list[str], seed: int) -> tuple[pd.DataFrame, ...]:
    """A regression set with a known signal, for measuring the model families apart from any market: standard
    normal float32 inputs named `columns` (at least 6), 5% of them missing, and a target that is a non-linear function
    of the first six plus noise (the signal explains about a fifth of the variance, more than markets do, so a fit's IC
    is measured precisely). Split in row order into train, validation and test (70%, 10%, 20%):
    (X_train, y_train, X_valid, y_valid, X_test, y_test), each with a fresh RangeIndex."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, len(columns))).astype(np.float32)
    signal = X[:, 0] - 0.5 * X[:, 1] + 0.5 * np.tanh(2 * X[:, 2]) + 0.3 * X[:, 3] * X[:, 4] + 0.2 * np.abs(X[:, 5])
    y = signal + 2.0 * rng.standard_normal(rows)
    X[rng.random(X.shape) < 0.05] = np.nan
    frame, target = pd.DataFrame(X, columns=columns), pd.Series(y)
    cuts = [0, int(0.7 * rows), int(0.8 * rows), rows]
    return tuple(part.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(cuts) for part in (frame, target))
