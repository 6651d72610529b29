"""Whether a challenger model should replace the champion: sanity first, then out-of-sample rank IC by a margin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.evaluation.backtest import evaluate

MIN_COVERAGE = 0.9  # share of the last test date's tickers the challenger must score


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: list[str]
    challenger_rank_ic: float
    champion_rank_ic: float | None


def sanity(pred: pd.Series, X: pd.DataFrame) -> list[str]:
    """What is wrong with a set of predictions on its own: non-finite, constant, or missing tickers."""
    problems = []
    if not np.isfinite(pred.to_numpy()).all():
        problems.append("non-finite predictions")
    if pred.std() == 0 or pred.nunique() <= 1:
        problems.append("constant predictions")
    last = X.index.get_level_values("date").max()
    expected = X.xs(last, level="date").index
    covered = pred.xs(last, level="date").dropna().index.intersection(expected)
    if len(expected) and len(covered) / len(expected) < MIN_COVERAGE:
        problems.append(f"covers {len(covered)} of {len(expected)} tickers on {last:%Y-%m-%d}")
    return problems


def judge(
    challenger: pd.Series,
    champion: pd.Series | None,
    label: pd.Series,
    X: pd.DataFrame,
    horizon: int,
    margin: float,
    min_rank_ic: float = 0.0,
) -> Verdict:
    """Promote when the challenger is sane and its rank IC on the same out-of-sample rows beats the champion's by
    `margin` (or, with no champion yet, exceeds `min_rank_ic`)."""
    reasons = sanity(challenger, X)
    challenger_ic = evaluate(challenger, label, horizon).metrics["rank_ic"]
    champion_ic = evaluate(champion, label, horizon).metrics["rank_ic"] if champion is not None else None
    if champion_ic is None and not challenger_ic > min_rank_ic:
        reasons.append(f"rank IC {challenger_ic:.4f} is not above {min_rank_ic}")
    if champion_ic is not None and not challenger_ic > champion_ic + margin:
        reasons.append(f"rank IC {challenger_ic:.4f} does not beat the champion's {champion_ic:.4f} by {margin}")
    return Verdict(not reasons, reasons, challenger_ic, champion_ic)
