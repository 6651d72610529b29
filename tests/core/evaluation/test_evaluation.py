"""Which model is in force on a day (never one that could have seen it), how strategies scale with the universe and
what the headline metadata holds. The assets themselves: tests/assets/test_evaluation_assets.py."""

import numpy as np
import pandas as pd
import pytest

from stockpred_assets.evaluation.reporting import (
    HEADLINE,
    INDEX,
    INDEX_HEADLINE,
    PortfolioConfig,
    headline,
    strategies,
)
from stockpred_assets.evaluation.scoring import Promotion, models_in_force, week_monday
from stockpred_core.evaluation.report import build_report

W0, W1, W2, W3 = (pd.Timestamp(d) for d in ("2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"))
DAYS = pd.bdate_range(W0, "2024-03-22")  # three weeks, no exchange holiday


def _promotion(version: str, week: pd.Timestamp, cutoff: pd.Timestamp | None = None) -> Promotion:
    return Promotion(version, week, week if cutoff is None else cutoff)


def test_the_model_in_force_is_the_latest_promoted_for_the_days_week_or_before():
    v1, v2, v2_again = _promotion("1", W1), _promotion("2", W2), _promotion("5", W2)
    chosen = models_in_force(DAYS, [v2, v1])
    assert [chosen[d] for d in DAYS[:5]] == [None] * 5  # before the first promotion
    assert {chosen[d].version for d in DAYS[5:10]} == {"1"} and {chosen[d].version for d in DAYS[10:]} == {"2"}
    # a week promoted twice: the newer version; a week without a promotion keeps the previous champion
    assert models_in_force([pd.Timestamp("2024-03-27")], [v1, v2, v2_again])[pd.Timestamp("2024-03-27")] == v2_again


def test_a_version_never_scores_a_day_before_its_training_cutoff_or_its_promotion():
    # mislabelled: promoted "from" W1 but trained up to W2's Monday (it saw W1): it must not score W1
    bad = _promotion("3", W1, cutoff=W2)
    chosen = models_in_force(DAYS, [_promotion("1", W0), bad])
    assert all(chosen[d].version == "1" for d in DAYS[:10]) and all(chosen[d].version == "3" for d in DAYS[10:])
    # a model promoted for W3 scores nothing in W0..W2, not even the Friday before its week
    assert set(models_in_force(DAYS, [_promotion("4", W3)]).values()) == {None}
    assert week_monday("2024-03-24") == W2 and week_monday(W2) == W2


def test_strategies_scale_k_and_drop_with_the_universe():
    config = PortfolioConfig()
    dropout, topk, spread = strategies(505, config)
    assert (dropout.kind, dropout.k, dropout.n_drop) == ("topk_dropout", 50, 5)
    assert topk.max_turnover == 0.2 and spread.max_turnover == 0.4 and spread.kind == "long_short"
    assert (dropout.open_cost_bps, dropout.close_cost_bps) == (5.0, 15.0)
    assert (strategies(30, config)[0].k, strategies(30, config)[0].n_drop) == (6, 1)
    assert strategies(3, config)[0].k == 1
    assert strategies(100, PortfolioConfig(max_turnover=0))[1].max_turnover is None


def test_strategies_add_a_buffered_book_and_trade_every_nth_decision_when_asked():
    assert all(s.rebalance_every == 1 and s.buffer == 0 for s in strategies(505, PortfolioConfig()))
    books = strategies(505, PortfolioConfig(buffer=25, rebalance_every=5))
    labels = ["top50_drop5_every5", "top50_to20pct_every5", "top50_buf25_every5", "long_short50_to40pct_every5"]
    assert [s.label for s in books] == labels and books[2].max_turnover is None  # the buffer is its turnover control
    assert strategies(30, PortfolioConfig(buffer=25))[2].buffer == 3  # scaled with k = 6 like n_drop


def test_the_headline_reads_each_figure_from_the_report_summary():
    rng = np.random.default_rng(2)
    dates = pd.bdate_range("2023-01-02", periods=80, name="date")
    tickers = pd.Index([f"T{i:02d}" for i in range(20)], name="ticker")
    market = rng.normal(0.0005, 0.01, 80)
    returns = pd.DataFrame(market[:, None] * 1.2 + rng.normal(0, 0.02, (80, 20)), index=dates, columns=tickers)
    pred = (returns.shift(-1) + rng.normal(0, 0.03, returns.shape)).iloc[:-1].stack()
    index_close = pd.Series(100 * np.cumprod(1 + np.r_[0.0, market]), index=pd.bdate_range("2022-12-30", periods=81))
    books = strategies(20, PortfolioConfig())
    report = build_report(pred, returns, strategies=books, index_close=index_close, index_name=INDEX)
    out = headline(report)
    assert set(out) == {*HEADLINE, *INDEX_HEADLINE} and all(np.isfinite(v) for v in out.values())
    summary, spread = report.summary, books[-1].label
    assert out["cost_drag"] == summary.loc["top4_drop1 net", "cost_drag"] > 0
    assert out["alpha_t_equal_weight"] == summary.loc["top4_drop1 net", "alpha_t_equal_weight"]
    assert out["beta_neutral_sharpe"] == summary.loc["top4_drop1 beta_neutral", "sharpe"]
    assert out["beta_neutral_alpha_t_index"] == summary.loc["top4_drop1 beta_neutral", f"alpha_t_{INDEX}"]
    assert out["long_short_alpha_t_index"] == summary.loc[f"{spread} net", f"alpha_t_{INDEX}"]
    assert out["beta_index"] == pytest.approx(1.2, abs=0.5)  # built on 1.2 x the index's returns, plus noise
    assert set(headline(build_report(pred, returns, strategies=books))) == set(HEADLINE)
