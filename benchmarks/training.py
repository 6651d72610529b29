"""Training time per model family and per Optuna trial on the real S&P 500 file, beside the bare libraries.

    .venv/bin/python benchmarks/training.py [--trials 10] [--train-weeks 104]

Builds the lake from ../shared/data/market/all_stocks_5yr.csv.gz (files provider -> validated_bars -> features, one
run each), reads the weekly training set for the week after the file ends through DuckDB (train_weeks of history,
5-session labels), then times per family:
- `fit`: one `Forecaster.fit` on the train segment, early-stopped on the valid segment (what a fold costs);
- `weekly`: the whole `train_model` of a weekly asset: walk-forward folds + the final fit + test metrics;
- `bare`: the same fit written directly against the library (lgb.train / a torch loop / numpy), the reference.
and for LightGBM the Optuna study: seconds per trial (TPE + median pruning) beside one bare lgb.train at the same
number of rounds. LightGBM uses every core (num_threads = os.cpu_count()).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import dagster as dg  # noqa: E402
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from stockpred_assets.features.assets import features  # noqa: E402
from stockpred_assets.ingestion.assets import raw_bars_files  # noqa: E402
from stockpred_assets.training.data import load_training_set  # noqa: E402
from stockpred_assets.validation.assets import validated_bars  # noqa: E402
from stockpred_core.dataset.splits import purged_train_valid  # noqa: E402
from stockpred_core.models.lgbm import DEFAULT_LGBM_PARAMS  # noqa: E402
from stockpred_core.models.neural import build_mlp  # noqa: E402
from stockpred_core.models.standardizer import Standardizer  # noqa: E402
from stockpred_core.models.training import TrainingSpec, make_forecaster, train_model  # noqa: E402
from stockpred_core.models.tuning import tune_lgbm  # noqa: E402
from stockpred_resources.lake import DuckDBResource, LakeResource  # noqa: E402
from stockpred_resources.market_data import MarketDataResource  # noqa: E402
from stockpred_resources.providers import FilesProvider  # noqa: E402

MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market"
RANGE = {"dagster/asset_partition_range_start": "2013-02-08", "dagster/asset_partition_range_end": "2018-02-07"}
CUTOFF = pd.Timestamp("2018-02-12")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
PARAMS = {"lightgbm": {"num_boost_round": 400}, "torch_mlp": {"epochs": 10}, "linear": {}, "momentum": {}}


def build_lake(root: str) -> tuple[LakeResource, DuckDBResource]:
    lake, duckdb = LakeResource(url=f"{root}/lake"), DuckDBResource(database=f"{root}/catalog.duckdb")
    resources = {
        "files_provider": FilesProvider(path=str(MARKET / "all_stocks_5yr.csv.gz")),
        "lake": lake,
        "duckdb": duckdb,
        "market_data": MarketDataResource(
            providers=["files"], index_file=str(MARKET / "GSPC.csv"), vix_file=str(MARKET / "VIX_History.csv")
        ),
    }
    for asset in (raw_bars_files, validated_bars, features):
        instance = dg.DagsterInstance.ephemeral()
        dg.materialize([asset], resources=resources, tags=RANGE, run_config=QUIET, instance=instance)
    return lake, duckdb


def timed(fn) -> tuple[float, object]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def bare_lightgbm(X, y, Xv, yv, rounds: int) -> lgb.Booster:
    train = lgb.Dataset(X.to_numpy(), y.to_numpy())
    valid = lgb.Dataset(Xv.to_numpy(), yv.to_numpy(), reference=train)
    params = {**DEFAULT_LGBM_PARAMS, "seed": 0}
    return lgb.train(params, train, rounds, valid_sets=[valid], callbacks=[lgb.early_stopping(40, verbose=False)])


def bare_torch(X, y, epochs: int) -> torch.nn.Module:
    """The MLP of TorchMLPForecaster trained by a minimal loop: same layers, optimizer, batch size, epochs."""
    torch.manual_seed(0)
    Z = torch.as_tensor(Standardizer.fit(X).transform(X), dtype=torch.float32)
    t = torch.as_tensor(((y - y.mean()) / y.std()).to_numpy(), dtype=torch.float32)
    net = build_mlp(Z.shape[1], (64, 32), 0.1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(epochs):
        for idx in torch.randperm(len(Z)).split(512):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(Z[idx]), t[idx]).backward()
            optimizer.step()
    torch.set_num_threads(previous)
    return net


def bare_linear(X, y) -> np.ndarray:
    Z = Standardizer.fit(X).transform(X)
    return np.linalg.solve(Z.T @ Z + np.eye(Z.shape[1]), Z.T @ (y.to_numpy() - y.mean()))


def bare_momentum(X, y) -> float:
    x = X["ret_20"].fillna(X["ret_20"].median()).to_numpy()
    return float(x @ y.to_numpy() / (x @ x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials to time")
    parser.add_argument("--train-weeks", type=int, default=104)
    args = parser.parse_args()
    if not (MARKET / "all_stocks_5yr.csv.gz").is_file():
        sys.exit(f"{MARKET} not found: the benchmark reads ../shared/data")
    with tempfile.TemporaryDirectory() as root:
        seconds, (lake, duckdb) = timed(lambda: build_lake(root))
        print(f"lake built from the S&P 500 file in {seconds:.0f}s")
        data = load_training_set(lake, duckdb, CUTOFF, args.train_weeks, 5, "return")
    spec = TrainingSpec()
    rest, _ = purged_train_valid(data.X.index, spec.test_fraction, spec.gap)
    X_rest, y_rest = data.X[rest.to_numpy()], data.y[rest.to_numpy()]
    train, valid = purged_train_valid(X_rest.index, spec.valid_fraction / (1 - spec.test_fraction), spec.gap)
    X, y = X_rest[train.to_numpy()], y_rest[train.to_numpy()]
    Xv, yv = X_rest[valid.to_numpy()], y_rest[valid.to_numpy()]
    print(
        f"training set: {len(data.X):,} rows x {data.X.shape[1]} features, "
        f"{data.X.index.get_level_values('ticker').nunique()} tickers; train segment {len(X):,} rows, "
        f"valid {len(Xv):,}; {os.cpu_count()} cores\n"
    )
    bare = {
        "lightgbm": lambda: bare_lightgbm(X, y, Xv, yv, 400),
        "torch_mlp": lambda: bare_torch(X, y, 10),
        "linear": lambda: bare_linear(X, y),
        "momentum": lambda: bare_momentum(X, y),
    }
    print(f"{'family':<10} {'fit s':>8} {'bare s':>8} {'fit/bare':>9} {'weekly s':>9} {'(folds + final fit + test)'}")
    for family, params in PARAMS.items():
        fit_s, model = timed(lambda: make_forecaster(family, params).fit(X, y, Xv, yv))  # noqa: B023
        bare_s, _ = timed(bare[family])
        weekly_s, _ = timed(lambda: train_model(family, data, spec, params))  # noqa: B023
        note = f"{len(model.valid_losses)} epochs" if family == "torch_mlp" else ""
        if family == "lightgbm":
            note = f"{model.booster.best_iteration or model.booster.current_iteration()} rounds"
        print(f"{family:<10} {fit_s:>8.2f} {bare_s:>8.2f} {fit_s / bare_s:>8.2f}x {weekly_s:>9.1f}  {note}")

    storage = f"sqlite:///{tempfile.mkdtemp()}/optuna.db"
    study_s, study = timed(lambda: tune_lgbm(X, y, Xv, yv, 5, args.trials, storage, "bench", 0, 400))
    states = pd.Series([t.state.name.lower() for t in study.trials]).value_counts().to_dict()
    durations = pd.Series([(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials])
    one_s, _ = timed(lambda: bare_lightgbm(X, y, Xv, yv, 400))
    print(
        f"\nOptuna ({args.trials} trials, TPE + median pruning, 400 rounds max): {study_s:.1f}s, "
        f"{study_s / args.trials:.2f}s per trial (median {durations.median():.2f}s; {states}); "
        f"a bare lgb.train of 400 rounds with early stopping: {one_s:.2f}s -> {study_s / args.trials / one_s:.2f}x"
    )


if __name__ == "__main__":
    main()
