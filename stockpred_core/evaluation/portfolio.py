"""Daily portfolios from predictions, vectorized: top-k long, top/bottom-k long-short and Qlib's TopK-dropout.

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
  rebalance). The last decision with no following session in `returns` is dropped: it earns nothing yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STRATEGY_KINDS = ("topk", "long_short", "topk_dropout")


def returns_from_prices(prices: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close returns of a wide (date x ticker) price frame, e.g. adj_close: prices are carried forward over a
    missing session (it returns 0 and the next session the whole move); NaN up to a ticker's first price."""
    carried = prices.sort_index().ffill()
    returns = carried / carried.shift(1) - 1.0
    returns.index = pd.DatetimeIndex(returns.index, name="date")
    return returns


def returns_from_bars(bars: pd.DataFrame, column: str = "adj_close") -> pd.DataFrame:
    """`returns_from_prices` of a long bar frame (columns date, ticker and `column`)."""
    prices = bars.pivot(index="date", columns="ticker", values=column)
    prices.index = pd.to_datetime(prices.index)
    return returns_from_prices(prices)


def forward_returns_from_returns(returns: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """The h-session forward return from each date's close, indexed by (date, ticker): the label that predictions
    made at D are scored against (horizon 1: the return the portfolio earns from D to D+1)."""
    growth = (1.0 + returns.fillna(0.0)).cumprod()
    forward = growth.shift(-horizon) / growth - 1.0
    forward = forward.where(returns.notna() | returns.shift(-1).notna())
    return forward.stack(future_stack=True).dropna().rename(f"fwd_ret_{horizon}").rename_axis(["date", "ticker"])


def to_wide(values: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """A (date, ticker)-indexed series as a date x ticker frame; a frame is returned as it is."""
    if isinstance(values, pd.DataFrame):
        return values
    if values.index.nlevels != 2:
        raise ValueError("expected a series indexed by (date, ticker)")
    wide = values.unstack(-1)
    wide.index = pd.DatetimeIndex(wide.index, name="date")
    return wide


@dataclass(frozen=True)
class Strategy:
    """How predictions become positions.

    - `topk`: long the k best-scored names at equal weight, rebalanced to equal weight at every decision.
    - `long_short`: long the k best and short the k worst at 1/k each (1 of capital long, 1 short, gross 2; the
      return is the top-minus-bottom spread). With fewer than 2k scored names, k becomes half of them.
    - `topk_dropout`: Qlib's TopkDropoutStrategy (method_sell="bottom", method_buy="top", risk_degree 1): hold k names;
      each decision ranks the held names together with the best non-held ones, sells the held names among the n_drop
      worst of that list (so it never sells a name to buy a worse one) and buys as many of the best non-held names as
      it sold (more while it holds fewer than k), splitting the cash equally among the buys; names kept are not
      rebalanced. A held name without a score ranks below every scored one.
    - `max_turnover` (topk, long_short): at most this two-sided turnover per decision; beyond it, every trade toward
      the target is scaled by the same factor (w = drifted + f (target - drifted)). None: no limit.
    - `delay`: sessions between the prediction date and the trade (0: trade at the prediction's close).
    """

    kind: str = "topk_dropout"
    k: int = 50
    n_drop: int = 5
    max_turnover: float | None = None
    open_cost_bps: float = 5.0
    close_cost_bps: float = 15.0
    delay: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STRATEGY_KINDS:
            raise ValueError(f"kind must be one of {STRATEGY_KINDS}, not {self.kind!r}")
        if self.k < 1 or self.n_drop < 0 or self.delay < 0:
            raise ValueError("k must be >= 1, n_drop and delay >= 0")
        if self.max_turnover is not None and (self.max_turnover <= 0 or self.kind == "topk_dropout"):
            raise ValueError("max_turnover must be > 0 and applies to topk and long_short (dropout limits by n_drop)")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        base = {
            "topk": f"top{self.k}",
            "long_short": f"long_short{self.k}",
            "topk_dropout": f"top{self.k}_drop{self.n_drop}",
        }
        suffix = f"_to{self.max_turnover * 100:g}pct" if self.max_turnover is not None else ""
        return base[self.kind] + suffix + (f"_delay{self.delay}" if self.delay else "")

    @property
    def long_only(self) -> bool:
        return self.kind != "long_short"


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


def _ranked(scores: np.ndarray) -> np.ndarray:
    """Column positions of each row from the best score to the worst; missing scores last, ties by column order."""
    return np.argsort(np.where(np.isfinite(scores), -scores, np.inf), axis=-1, kind="stable")


def topk_weights(scores: np.ndarray, k: int) -> np.ndarray:
    """Equal weights 1/m on each row's m = min(k, scored names) best names."""
    order = _ranked(scores)
    m = np.minimum(k, np.isfinite(scores).sum(axis=1))[:, None]
    place = np.arange(scores.shape[1])[None, :]
    values = np.where(place < m, 1.0 / np.maximum(m, 1), 0.0)
    weights = np.zeros_like(scores, dtype=float)
    np.put_along_axis(weights, order, values, axis=1)
    return weights


def long_short_weights(scores: np.ndarray, k: int) -> np.ndarray:
    """+1/m on each row's m best names and -1/m on its m worst, m = min(k, scored names // 2)."""
    order = _ranked(scores)
    n = np.isfinite(scores).sum(axis=1)[:, None]
    m = np.minimum(k, n // 2)
    place = np.arange(scores.shape[1])[None, :]
    size = 1.0 / np.maximum(m, 1)
    values = np.where(place < m, size, 0.0) - np.where((place >= n - m) & (place < n), size, 0.0)
    weights = np.zeros_like(scores, dtype=float)
    np.put_along_axis(weights, order, values, axis=1)
    return weights


def _drift(weights: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Weights after one session of returns (cash, 1 - sum(weights), earns 0). Works on one row or many."""
    growth = 1.0 + (weights * returns).sum(axis=-1, keepdims=True)
    return weights * (1.0 + returns) / np.where(growth != 0.0, growth, 1.0)


def _follow_targets(
    targets: np.ndarray, next_returns: np.ndarray, trade: np.ndarray, max_turnover: float | None
) -> np.ndarray:
    """Weights after each decision's trades, moving toward the target weights: all the way when there is no turnover
    limit (one array operation when every row is a decision), else scaled to the limit; held on non-decision rows."""
    if max_turnover is None and trade.all():
        return targets
    held = np.zeros_like(targets)
    current = np.zeros(targets.shape[1])
    for t in range(len(targets)):
        if t:
            current = _drift(held[t - 1], next_returns[t - 1])
        if trade[t]:
            step = targets[t] - current
            size = np.abs(step).sum()
            scale = 1.0 if max_turnover is None or size <= max_turnover else max_turnover / size
            current = current + scale * step
        held[t] = current
    return held


def topk_dropout_weights(scores: np.ndarray, next_returns: np.ndarray, k: int, n_drop: int) -> np.ndarray:
    """Weights after each decision's trades of Qlib's TopK-dropout (see `Strategy`). Sequential over days (each day
    depends on what is held); the work within a day is a few numpy sorts and masks over the tickers."""
    sessions, n = scores.shape
    out = np.zeros((sessions, n))
    weights = np.zeros(n)
    held = np.zeros(n, dtype=bool)
    position = np.empty(n, dtype=np.int64)
    for t in range(sessions):
        if t:
            weights = _drift(out[t - 1], next_returns[t - 1])
        scored = np.isfinite(scores[t])
        if scored.any():
            order = _ranked(scores[t])
            position[order] = np.arange(n)
            last = np.flatnonzero(held)
            candidates = order[scored[order] & ~held[order]][: max(0, n_drop + k - len(last))]
            combined = np.concatenate([last, candidates])
            combined = combined[np.argsort(position[combined], kind="stable")]
            worst = combined[max(0, len(combined) - n_drop) :] if n_drop else combined[:0]
            sell = worst[held[worst]]
            buy = candidates[: max(0, len(sell) + k - len(last))]
            weights = weights.copy()
            cash = 1.0 - weights.sum() + weights[sell].sum()
            weights[sell], held[sell] = 0.0, False
            if len(buy):
                weights[buy], held[buy] = cash / len(buy), True
        out[t] = weights
    return out


def account(
    held: np.ndarray, next_returns: np.ndarray, open_cost_bps: float, close_cost_bps: float
) -> dict[str, np.ndarray]:
    """Daily gross and net returns, trades and exposures of a sequence of post-trade weights, in array operations."""
    gross = (held * next_returns).sum(axis=1)
    before = np.zeros_like(held)
    before[1:] = _drift(held[:-1], next_returns[:-1])
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


def run_strategy(pred: pd.Series | pd.DataFrame, returns: pd.DataFrame, strategy: Strategy) -> PortfolioResult:
    """Simulate one strategy on predictions (a (date, ticker) series or a date x ticker frame of scores, higher is
    better) and daily returns (date x ticker, `returns_from_prices`). See the module docstring for the conventions."""
    data = align(pred, returns, strategy.delay)
    trade = np.isfinite(data.scores).any(axis=1)
    if strategy.kind == "topk_dropout":
        held = topk_dropout_weights(data.scores, data.next_returns, strategy.k, strategy.n_drop)
    else:
        build = topk_weights if strategy.kind == "topk" else long_short_weights
        held = _follow_targets(build(data.scores, strategy.k), data.next_returns, trade, strategy.max_turnover)
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


def index_returns(close: pd.Series, sessions: pd.DatetimeIndex) -> pd.Series:
    """Close-to-close returns of an index (e.g. ^GSPC's Adj Close, dated) on the given sessions: the close of each
    session (the last one at or before it) over the previous session's."""
    close = close.sort_index()
    close.index = pd.DatetimeIndex(close.index).normalize()
    on_sessions = close[~close.index.duplicated(keep="last")].reindex(pd.DatetimeIndex(sessions), method="ffill")
    return (on_sessions / on_sessions.shift(1) - 1.0).rename("index").rename_axis("date")
