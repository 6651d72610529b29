"""Out-of-sample evaluation: signal quality (IC, rank IC, ICIR, hit rate, error vs naive) and a long-short
portfolio after costs, rebalanced every `horizon` sessions so holding periods never overlap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_assets.core.splits import Fold

PERIODS_PER_YEAR = 252


@dataclass(frozen=True)
class BacktestResult:
    metrics: dict[str, float]
    daily_ic: pd.Series  # by date
    equity: pd.DataFrame  # by rebalance date: long_short, buy_and_hold (cumulative growth of 1)


def _by_date_corr(pred: pd.Series, label: pd.Series, method: str) -> pd.Series:
    frame = pd.DataFrame({"pred": pred, "label": label})
    if method == "spearman":
        frame = frame.groupby(level="date").rank()
    grouped = frame.groupby(level="date")
    return grouped.apply(lambda g: g["pred"].corr(g["label"]) if len(g) > 2 else np.nan).dropna()


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


def walk_forward_predictions(
    X: pd.DataFrame, y: pd.Series, folds: list[Fold], make_model: Callable[[], object]
) -> pd.Series:
    """Out-of-sample predictions: each fold's model sees only rows dated up to its `train_end`."""
    dates = X.index.get_level_values("date")
    parts = []
    for fold in folds:
        train = dates <= fold.train_end
        test = (dates >= fold.test_start) & (dates <= fold.test_end)
        model = make_model().fit(X[train], y[train])
        parts.append(model.predict(X[test]))
    return pd.concat(parts).sort_index()
