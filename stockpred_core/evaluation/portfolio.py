"""Daily portfolios from predictions, vectorized: the engine that runs a `strategies.Strategy` and books its returns.

Timing (no look-ahead). A prediction for (D, ticker) is a score known at D's close. The strategy trades at D's close
(or `delay` sessions later) and the position earns the close-to-close return from D to the next session D+1.
Returns are a wide (date x ticker) frame in the `pct_change` convention: returns.loc[t] = close(t) / close(previous
session) - 1, indexed by the session where the return ends (`returns_from_prices` builds it from adj_close). Results are
indexed the same way: the row for session t is the holding from the previous session's close to t's close, with the
trades made at that previous close which built it (their turnover and cost). So a prediction equal to the same day's
return earns nothing special, and one equal to the next day's return earns it
(tests/core/evaluation/test_portfolio.py checks both).
Qlib trades one session later than its signal date (its Alpha158 label is Ref($close, -2) / Ref($close, -1) - 1):
`delay=1` reproduces that convention.

Accounting. Weights are fractions of the account value; cash earns 0; shorts are negative weights. Between closes a
weight drifts with its return: w+ = w (1 + r) / (1 + R), where R = sum(w r) is the gross portfolio return. At each
close the strategy sets new weights and trades = new - drifted.
- Turnover is two-sided, Qlib's definition: (value bought + value sold) / account value = sum |trades|. Entering a
  long-only book from cash is 1.0, switching it completely 2.0; TopK 50 / drop 5 is about 5 sold + 5 bought of 50 = 0.2.
  The one-sided figure (sum |trades| / 2) is half of it.
- Costs: `open_cost_bps` on the value bought and `close_cost_bps` on the value sold (Qlib's open_cost / close_cost,
  default 5 and 15 bps; for a short, the sale that opens it pays the close rate and the purchase that covers it the
  open rate). They are charged to the holding the trades built: net = gross - cost, Qlib's additive convention.
- A missing return (no bar that session, or the ticker absent from `returns`) counts as 0 for a held name: its price
  is carried. A ticker can be bought or kept in a target-weight book only on a date where it has a score.
- Dates without any score are not decision dates: positions are held and drift (so weekly predictions give a weekly
  rebalance); `Strategy.rebalance_every` n keeps every n-th decision date only, with the same effect on daily ones.
  The last decision with no following session in `returns` is dropped: it earns nothing yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.evaluation.returns import to_wide
from stockpred_core.evaluation.strategies import (
    Strategy,
    buffered_topk_weights,
    drift,
    follow_targets,
    long_short_weights,
    topk_dropout_weights,
    topk_weights,
)


@dataclass(frozen=True)
class PortfolioResult:
    strategy: Strategy
    # By the session where each holding's return ends: gross, cost, net (= gross - cost) returns; turnover (two-sided,
    # of the trades at the previous close), bought, sold (value / account value); long, short (gross exposures after
    # those trades); n_long, n_short (positions held).
    daily: pd.DataFrame
    weights: pd.DataFrame  # weights after the trades, by decision date (date x ticker)


@dataclass(frozen=True)
class Aligned:
    """Predictions and returns on one calendar: row t is a decision session, its scores (delayed when asked) and the
    return each ticker earns from it to the next session (0 where missing)."""

    decisions: pd.DatetimeIndex
    realized: pd.DatetimeIndex
    tickers: pd.Index
    scores: np.ndarray  # T x N, NaN where no score
    next_returns: np.ndarray  # T x N


def align(pred: pd.Series | pd.DataFrame, returns: pd.DataFrame, delay: int = 0) -> Aligned:
    """Put predictions (a (date, ticker) series or a date x ticker frame) on the sessions of `returns`."""
    scores = to_wide(pred)
    sessions = pd.DatetimeIndex(returns.index)
    if not sessions.is_monotonic_increasing or sessions.has_duplicates:
        raise ValueError("returns must be indexed by increasing, unique sessions")
    scores = scores.loc[scores.notna().any(axis=1)]
    missing_dates = pd.DatetimeIndex(scores.index).difference(sessions)
    if len(missing_dates):
        raise ValueError(f"{len(missing_dates)} prediction dates are not sessions of returns, e.g. {missing_dates[0]}")
    missing_tickers = scores.columns.difference(returns.columns)
    if len(missing_tickers):
        raise ValueError(f"{len(missing_tickers)} predicted tickers have no returns, e.g. {missing_tickers[0]}")
    if scores.empty:
        raise ValueError("no predictions")
    first = sessions.get_loc(scores.index.min()) + delay
    last = min(sessions.get_loc(scores.index.max()) + delay, len(sessions) - 2)
    if last < first:
        raise ValueError("no prediction has a following session to earn a return in")
    on_sessions = scores.reindex(index=sessions, columns=returns.columns).shift(delay)
    return Aligned(
        decisions=sessions[first : last + 1],
        realized=sessions[first + 1 : last + 2],
        tickers=returns.columns,
        scores=on_sessions.iloc[first : last + 1].to_numpy(dtype=float),
        next_returns=np.nan_to_num(returns.iloc[first + 1 : last + 2].to_numpy(dtype=float), nan=0.0),
    )


def account(
    held: np.ndarray, next_returns: np.ndarray, open_cost_bps: float, close_cost_bps: float
) -> dict[str, np.ndarray]:
    """Daily gross and net returns, trades and exposures of a sequence of post-trade weights, in array operations."""
    gross = (held * next_returns).sum(axis=1)
    before = np.zeros_like(held)
    before[1:] = drift(held[:-1], next_returns[:-1])
    trades = held - before
    trades[np.abs(trades) < 1e-15] = 0.0
    bought, sold = np.clip(trades, 0.0, None).sum(axis=1), np.clip(-trades, 0.0, None).sum(axis=1)
    cost = (bought * open_cost_bps + sold * close_cost_bps) / 1e4
    return {
        "gross": gross,
        "cost": cost,
        "net": gross - cost,
        "turnover": bought + sold,
        "bought": bought,
        "sold": sold,
        "long": np.clip(held, 0.0, None).sum(axis=1),
        "short": np.clip(-held, 0.0, None).sum(axis=1),
        "n_long": (held > 1e-12).sum(axis=1),
        "n_short": (held < -1e-12).sum(axis=1),
    }


def rebalance_scores(scores: np.ndarray, every: int) -> np.ndarray:
    """The scores of every `every`-th decision row (a row with a score), counted from the first; the other rows
    emptied so the book holds through them."""
    decision = np.isfinite(scores).any(axis=1)
    if every == 1 or not decision.any():
        return scores
    keep = decision & ((np.cumsum(decision) - 1) % every == 0)
    return np.where(keep[:, None], scores, np.nan)


def run_strategy(pred: pd.Series | pd.DataFrame, returns: pd.DataFrame, strategy: Strategy) -> PortfolioResult:
    """Simulate one strategy on predictions (a (date, ticker) series or a date x ticker frame of scores, higher is
    better) and daily returns (date x ticker, `returns_from_prices`). See the module docstring for the conventions."""
    data = align(pred, returns, strategy.delay)
    scores = rebalance_scores(data.scores, strategy.rebalance_every)
    trade = np.isfinite(scores).any(axis=1)
    if strategy.kind == "topk_dropout":
        held = topk_dropout_weights(scores, data.next_returns, strategy.k, strategy.n_drop)
    else:
        if strategy.kind == "long_short":
            targets = long_short_weights(scores, strategy.k)
        elif strategy.buffer:
            targets = buffered_topk_weights(scores, strategy.k, strategy.buffer)
        else:
            targets = topk_weights(scores, strategy.k)
        held = follow_targets(targets, data.next_returns, trade, strategy.max_turnover)
    daily = pd.DataFrame(
        account(held, data.next_returns, strategy.open_cost_bps, strategy.close_cost_bps),
        index=pd.DatetimeIndex(data.realized, name="date"),
    )
    weights = pd.DataFrame(held, index=pd.DatetimeIndex(data.decisions, name="date"), columns=data.tickers)
    return PortfolioResult(strategy=strategy, daily=daily, weights=weights)


def equal_weight_returns(pred: pd.Series | pd.DataFrame, returns: pd.DataFrame, delay: int = 0) -> pd.Series:
    """The equal-weighted universe benchmark: the mean next-session return of every ticker with a score at each
    decision (rebalanced daily, no costs), indexed like `PortfolioResult.daily`."""
    data = align(pred, returns, delay)
    scored = np.isfinite(data.scores)
    counts = scored.sum(axis=1)
    mean = np.where(scored, data.next_returns, 0.0).sum(axis=1) / np.maximum(counts, 1)
    series = pd.Series(np.where(counts > 0, mean, np.nan), index=data.realized, name="equal_weight")
    return series.rename_axis("date").dropna()
