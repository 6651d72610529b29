"""How predictions become target weights: top-k long (optionally with a rank buffer), top/bottom-k long-short and
Qlib's TopK-dropout, with the drift of weights between closes they trade from (the timing and accounting conventions:
`portfolio.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGY_KINDS = ("topk", "long_short", "topk_dropout")


@dataclass(frozen=True)
class Strategy:
    """How predictions become positions.

    - `topk`: long the k best-scored names at equal weight, rebalanced to equal weight at every decision.
      With `buffer` b > 0 a held name stays while it ranks within the best k + b, and the best names not held fill
      the book back up to k (a name can only enter at the top k): the usual turnover control beside dropout.
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
    - `rebalance_every` n: trade on every n-th decision date only (the first, the (n+1)-th, ...) and hold, drifting,
      through the others (5 on daily predictions: weekly, for a 5-session label).
    """

    kind: str = "topk_dropout"
    k: int = 50
    n_drop: int = 5
    max_turnover: float | None = None
    open_cost_bps: float = 5.0
    close_cost_bps: float = 15.0
    delay: int = 0
    rebalance_every: int = 1
    buffer: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STRATEGY_KINDS:
            raise ValueError(f"kind must be one of {STRATEGY_KINDS}, not {self.kind!r}")
        if self.k < 1 or self.n_drop < 0 or self.delay < 0 or self.rebalance_every < 1 or self.buffer < 0:
            raise ValueError("k and rebalance_every must be >= 1, n_drop, delay and buffer >= 0")
        if self.buffer and self.kind != "topk":
            raise ValueError("buffer applies to topk (dropout limits by n_drop)")
        if self.max_turnover is not None and (self.max_turnover <= 0 or self.kind == "topk_dropout"):
            raise ValueError("max_turnover must be > 0 and applies to topk and long_short (dropout limits by n_drop)")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        base = {
            "topk": f"top{self.k}" + (f"_buf{self.buffer}" if self.buffer else ""),
            "long_short": f"long_short{self.k}",
            "topk_dropout": f"top{self.k}_drop{self.n_drop}",
        }
        suffix = f"_to{self.max_turnover * 100:g}pct" if self.max_turnover is not None else ""
        suffix += f"_every{self.rebalance_every}" if self.rebalance_every > 1 else ""
        return base[self.kind] + suffix + (f"_delay{self.delay}" if self.delay else "")

    @property
    def long_only(self) -> bool:
        return self.kind != "long_short"


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


def buffered_topk_weights(scores: np.ndarray, k: int, buffer: int) -> np.ndarray:
    """Equal weights on each row's book under the buffer rule (see `Strategy`): the names held before that still rank
    within the best k + buffer, then the best names not held until m = min(k, scored names) are held. Rows without a
    score keep the previous book. Sequential over rows, since each book depends on the one before."""
    sessions, n = scores.shape
    out = np.zeros((sessions, n))
    held = np.zeros(n, dtype=bool)
    position = np.empty(n, dtype=np.int64)
    for t in range(sessions):
        scored = np.isfinite(scores[t])
        if scored.any():
            order = _ranked(scores[t])
            position[order] = np.arange(n)
            m = min(k, int(scored.sum()))
            kept = order[held[order] & scored[order] & (position[order] < k + buffer)][:m]
            entering = order[~np.isin(order, kept)][: m - len(kept)]
            held[:] = False
            held[kept], held[entering] = True, True
        if held.any():
            out[t, held] = 1.0 / held.sum()
    return out


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


def drift(weights: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Weights after one session of returns (cash, 1 - sum(weights), earns 0). Works on one row or many."""
    growth = 1.0 + (weights * returns).sum(axis=-1, keepdims=True)
    return weights * (1.0 + returns) / np.where(growth != 0.0, growth, 1.0)


def follow_targets(
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
            current = drift(held[t - 1], next_returns[t - 1])
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
            weights = drift(out[t - 1], next_returns[t - 1])
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
