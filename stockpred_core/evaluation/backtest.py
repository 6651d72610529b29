"""Out-of-sample evaluation: signal quality (IC, rank IC, ICIR, hit rate, error vs naive) and a long-short
portfolio after costs, rebalanced every `horizon` sessions so holding periods never overlap.

`daily_ic` and `signal_metrics` are the vectorized signal half of the evaluation engine (wide date x ticker matrices,
no per-date Python loop); `core.portfolio` simulates daily portfolios and `core.report` draws and writes the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.dataset.splits import Fold

PERIODS_PER_YEAR = 252


@dataclass(frozen=True)
class BacktestResult:
    metrics: dict[str, float]
    daily_ic: pd.Series  # by date
    equity: pd.DataFrame  # by rebalance date: long_short, buy_and_hold (cumulative growth of 1)


def _rowwise_corr(x: np.ndarray, y: np.ndarray, min_names: int) -> np.ndarray:
    """Pearson correlation of each row of x with the same row of y over the columns where both are finite."""
    both = np.isfinite(x) & np.isfinite(y)
    n = both.sum(axis=1)
    x, y = np.where(both, x, 0.0), np.where(both, y, 0.0)
    safe_n = np.maximum(n, 1)[:, None]
    dx = np.where(both, x - x.sum(axis=1, keepdims=True) / safe_n, 0.0)
    dy = np.where(both, y - y.sum(axis=1, keepdims=True) / safe_n, 0.0)
    sxx, syy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1)
    denominator = np.sqrt(sxx * syy)
    ok = (n >= min_names) & (denominator > 1e-300)
    return np.where(ok, (dx * dy).sum(axis=1) / np.where(ok, denominator, 1.0), np.nan)


def daily_ic(pred: pd.Series, label: pd.Series, method: str = "pearson", min_names: int = 3) -> pd.Series:
    """The cross-sectional correlation of predictions with realized labels on each date, both indexed by
    (date, ticker): Pearson (IC) or Spearman (rank IC: Pearson of average ranks, ties averaged). Only the tickers
    where both are present and finite count; a date with fewer than `min_names` of them, or a constant cross-section,
    is left out. Vectorized over a wide (date x ticker) matrix."""
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', not {method!r}")
    frame = pd.concat({"pred": pred, "label": label}, axis=1, join="inner")
    frame = frame[np.isfinite(frame["pred"]) & np.isfinite(frame["label"])]
    x, y = frame["pred"].unstack(-1), frame["label"].unstack(-1)
    if method == "spearman":
        x, y = x.rank(axis=1), y.rank(axis=1)
    values = _rowwise_corr(x.to_numpy(dtype=float), y.to_numpy(dtype=float), min_names)
    return pd.Series(
        values, index=pd.DatetimeIndex(x.index, name="date"), name="rank_ic" if method == "spearman" else "ic"
    ).dropna()


def ic_statistics(ic: pd.Series, horizon: int = 1, prefix: str = "ic") -> dict[str, float]:
    """Mean, standard deviation, IR (mean / std of the daily series, not annualized, as Qlib reports it), the
    t-statistic of the mean and the share of positive dates. With an h-session label the daily values overlap, so the
    t-statistic uses every h-th date only (non-overlapping samples): t = mean / std * sqrt(n) over those dates."""
    ic = ic.dropna()
    std = float(ic.std()) if len(ic) > 1 else float("nan")
    spaced = ic.iloc[:: max(1, horizon)]
    spaced_std = float(spaced.std()) if len(spaced) > 1 else float("nan")
    return {
        prefix: float(ic.mean()) if len(ic) else float("nan"),
        f"{prefix}_std": std,
        f"{prefix}ir": float(ic.mean() / std) if std > 0 else float("nan"),
        f"{prefix}_t": float(spaced.mean() / spaced_std * np.sqrt(len(spaced))) if spaced_std > 0 else float("nan"),
        f"{prefix}_positive": float((ic > 0).mean()) if len(ic) else float("nan"),
    }


@dataclass(frozen=True)
class SignalResult:
    metrics: dict[str, float]
    ic: pd.Series  # Pearson IC by date
    rank_ic: pd.Series  # Spearman rank IC by date


def signal_metrics(pred: pd.Series, label: pd.Series, horizon: int = 1) -> SignalResult:
    """Signal quality of predictions against realized forward returns, both indexed by (date, ticker), on the rows
    they share: IC and rank IC with their std, IR and t (see `ic_statistics`), hit rate (share of rows where the
    prediction and the realized return have the same sign) and the mean squared error beside the naive baseline that
    predicts a zero return (`mse_vs_naive` < 1 and `oos_r2` > 0 mean the model beats it)."""
    frame = pd.concat({"pred": pred, "label": label}, axis=1, join="inner").dropna()
    p, y = frame["pred"], frame["label"]
    ic, rank_ic = daily_ic(p, y, "pearson"), daily_ic(p, y, "spearman")
    mse, naive_mse = float(((p - y) ** 2).mean()), float((y**2).mean())
    metrics = {
        **ic_statistics(ic, horizon, "ic"),
        **ic_statistics(rank_ic, horizon, "rank_ic"),
        "hit_rate": float((np.sign(p) == np.sign(y)).mean()),
        "mse": mse,
        "naive_mse": naive_mse,
        "mse_vs_naive": mse / naive_mse if naive_mse > 0 else float("nan"),
        "oos_r2": 1.0 - mse / naive_mse if naive_mse > 0 else float("nan"),
        "n_predictions": float(len(frame)),
        "n_dates": float(frame.index.get_level_values(0).nunique()),
    }
    return SignalResult(metrics=metrics, ic=ic, rank_ic=rank_ic)


def _by_date_corr(pred: pd.Series, label: pd.Series, method: str) -> pd.Series:
    return daily_ic(pred, label, method)


def _max_drawdown(growth: pd.Series) -> float:
    return float((growth / growth.cummax() - 1.0).min()) if len(growth) else float("nan")


def long_short(pred: pd.Series, label: pd.Series, horizon: int, top_fraction: float, cost_bps: float) -> pd.DataFrame:
    """Per-rebalance returns of the top-minus-bottom equal-weight portfolio (after costs) and of buy-and-hold."""
    dates = pd.DatetimeIndex(pred.index.get_level_values("date").unique()).sort_values()[::horizon]
    rows, prev_weights = [], pd.Series(dtype=float)
    for day in dates:
        p, y = pred.xs(day, level="date"), label.xs(day, level="date")
        k = max(1, int(len(p) * top_fraction))
        ranked = p.sort_values()
        weights = pd.concat([pd.Series(1.0 / k, index=ranked.index[-k:]), pd.Series(-1.0 / k, index=ranked.index[:k])])
        turnover = weights.sub(prev_weights, fill_value=0.0).abs().sum() / 2.0
        gross = float((weights * y.reindex(weights.index)).sum())
        rows.append(
            {
                "date": day,
                "long_short": gross - turnover * cost_bps / 1e4,
                "turnover": turnover,
                "buy_and_hold": float(y.mean()),
            }
        )
        prev_weights = weights
    return pd.DataFrame(rows).set_index("date")


def evaluate(
    pred: pd.Series, label: pd.Series, horizon: int, top_fraction: float = 0.2, cost_bps: float = 10.0
) -> BacktestResult:
    """Metrics of out-of-sample predictions against realized forward returns (both indexed by (date, ticker))."""
    label = label.loc[pred.index]
    ic, rank_ic = _by_date_corr(pred, label, "pearson"), _by_date_corr(pred, label, "spearman")
    periods = long_short(pred, label, horizon, top_fraction, cost_bps)
    per_year = PERIODS_PER_YEAR / horizon
    ls = periods["long_short"]
    growth = pd.DataFrame({"long_short": (1 + ls).cumprod(), "buy_and_hold": (1 + periods["buy_and_hold"]).cumprod()})
    mse = float(((pred - label) ** 2).mean())
    naive_mse = float((label**2).mean())
    # Daily ICs of h-session labels overlap; the t-statistic uses every h-th date so its samples do not.
    spaced = rank_ic.iloc[::horizon]
    metrics = {
        "ic": float(ic.mean()),
        "rank_ic": float(rank_ic.mean()),
        "rank_ic_t": float(spaced.mean() / spaced.std() * np.sqrt(len(spaced))) if spaced.std() > 0 else float("nan"),
        "icir": float(ic.mean() / ic.std()) if ic.std() > 0 else float("nan"),
        "rank_icir": float(rank_ic.mean() / rank_ic.std()) if rank_ic.std() > 0 else float("nan"),
        "hit_rate": float((np.sign(pred) == np.sign(label)).mean()),
        "mse": mse,
        "naive_mse": naive_mse,
        "mse_vs_naive": mse / naive_mse if naive_mse > 0 else float("nan"),
        "annual_return": float(ls.mean() * per_year),
        "sharpe": float(ls.mean() / ls.std() * np.sqrt(per_year)) if ls.std() > 0 else float("nan"),
        "max_drawdown": _max_drawdown(growth["long_short"]),
        "turnover": float(periods["turnover"].mean()),
        "buy_and_hold_annual_return": float(periods["buy_and_hold"].mean() * per_year),
        "n_predictions": float(len(pred)),
        "n_dates": float(pred.index.get_level_values("date").nunique()),
    }
    return BacktestResult(metrics=metrics, daily_ic=rank_ic.rename("rank_ic"), equity=growth)


@dataclass(frozen=True)
class UpdateSchedule:
    """Incremental updates of each fold's model inside its test block: every `every` sessions, `rounds` more
    boosting rounds on the rows of the last `window` sessions whose labels are known by then (dated at least `gap`
    sessions before the day predicted, as a refit's training rows are)."""

    every: int
    rounds: int
    window: int
    gap: int

    def __post_init__(self) -> None:
        if self.every < 1 or self.rounds < 1 or self.window < 1 or self.gap < 1:
            raise ValueError(f"every, rounds, window and gap must be at least 1, got {self}")


def walk_forward_predictions(
    X: pd.DataFrame,
    y: pd.Series,
    folds: list[Fold],
    make_model: Callable[[], object],
    update: UpdateSchedule | None = None,
) -> pd.Series:
    """Out-of-sample predictions: each fold's model sees only rows dated up to its `train_end`; with `update`, the
    model is also updated (`model.update(X, y, rounds)`) inside its test block on the rows whose labels are known
    before each day it predicts, so a prediction for day D never uses a label that ends after D."""
    row_dates = X.index.get_level_values("date")
    dates = pd.DatetimeIndex(row_dates.unique()).sort_values()
    parts = []
    for fold in folds:
        model = make_model().fit(X[row_dates <= fold.train_end], y[row_dates <= fold.train_end])
        block = dates[(dates >= fold.test_start) & (dates <= fold.test_end)]
        if update is None or len(block) == 0:
            parts.append(model.predict(X[(row_dates >= fold.test_start) & (row_dates <= fold.test_end)]))
            continue
        trained_to = fold.train_end
        for chunk in (block[i : i + update.every] for i in range(0, len(block), update.every)):
            known = dates[max(0, dates.get_loc(chunk[0]) - update.gap - 1)]  # the last day whose label is known
            if known > trained_to:
                first = dates[max(0, dates.get_loc(known) - update.window + 1)]
                rows = (row_dates >= first) & (row_dates <= known)
                model.update(X[rows], y[rows], update.rounds)
                trained_to = known
            parts.append(model.predict(X[row_dates.isin(chunk)]))
    return pd.concat(parts).sort_index()
