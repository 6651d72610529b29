"""The portfolio engine on hand-computed cases: returns, costs, turnover, drawdown, TopK-dropout's choices, the buffer
and rebalance-every turnover controls, beta, alpha, cost drag and the ex-ante beta hedge, and timing (a position
chosen at D's close earns D -> D+1, never anything known only later)."""

import importlib.util
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from support import ROOT

from stockpred_core.dataset.splits import walk_forward_folds
from stockpred_core.evaluation.backtest import UpdateSchedule, signal_metrics, walk_forward_predictions
from stockpred_core.evaluation.performance import (
    beta_alpha,
    beta_hedged,
    cost_drag,
    drawdown,
    ex_ante_beta,
    max_drawdown,
    per_year,
    risk_metrics,
)
from stockpred_core.evaluation.portfolio import equal_weight_returns, run_strategy
from stockpred_core.evaluation.returns import forward_returns_from_returns, index_returns, returns_from_prices
from stockpred_core.evaluation.strategies import Strategy

DATES = pd.bdate_range("2024-01-01", periods=5, name="date")  # d0..d4
# Close-to-close returns, indexed by the session where each ends (d0 has none).
RETURNS = pd.DataFrame(
    {
        "A": [np.nan, 0.10, -0.10, 0.00, 0.05],
        "B": [np.nan, 0.00, 0.20, 0.10, -0.05],
        "C": [np.nan, -0.10, 0.00, 0.10, 0.00],
        "D": [np.nan, 0.05, 0.00, -0.20, 0.00],
    },
    index=DATES,
)
# Scores known at the close of d0..d3.
SCORES = pd.DataFrame(
    {"A": [4, 4, 2, 2], "B": [3, 3, 4, 1], "C": [2, 2, 3, 4], "D": [1, 1, 1, 3]}, index=DATES[:4], dtype=float
)
BP = 1e-4


def _weights(result, day):
    row = result.weights.loc[day]
    return row[row != 0].to_dict()


def test_topk_returns_costs_turnover_and_drawdown_by_hand():
    result = run_strategy(SCORES, RETURNS, Strategy("topk", k=2))  # 5 bps to open (buy), 15 bps to close (sell)
    daily = result.daily
    assert list(daily.index) == list(DATES[1:])  # each row: the holding from the previous close to this one
    # d0: buy A and B from cash at 0.5 each. d1: A +10%, B 0% -> gross 5%; the trades cost 5 bps on 1.0 bought.
    # At d1's close A has drifted to 0.55 / 1.05 and B to 0.5 / 1.05: back to 0.5 each sells 0.025 / 1.05 of A and
    # buys as much B (turnover 0.05 / 1.05, cost 20 bps of 0.025 / 1.05). d2: A -10%, B +20% -> gross 5%.
    # At d2's close A = 0.45 / 1.05 and B = 0.6 / 1.05; the new book is B, C: sell all A and 0.075 / 1.05 of B
    # (0.5 sold), buy 0.5 C -> turnover 1.0, cost 5 bps x 0.5 + 15 bps x 0.5 = 10 bps. d3: B, C +10% each.
    # At d3's close B and C are at 0.5 again; the new book C, D sells B and buys D (turnover 1.0, 10 bps). d4: 0%.
    np.testing.assert_allclose(daily["gross"], [0.05, 0.05, 0.10, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["turnover"], [1.0, 0.05 / 1.05, 1.0, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["bought"], [1.0, 0.025 / 1.05, 0.5, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["cost"], [5 * BP, 20 * BP * 0.025 / 1.05, 10 * BP, 10 * BP], rtol=0, atol=1e-15)
    net = [0.0495, 0.05 - 20 * BP * 0.025 / 1.05, 0.099, -0.001]
    np.testing.assert_allclose(daily["net"], net, rtol=0, atol=1e-15)
    assert daily["n_long"].tolist() == [2, 2, 2, 2] and daily["n_short"].tolist() == [0, 0, 0, 0]
    assert _weights(result, DATES[2]) == {"B": 0.5, "C": 0.5}
    # Wealth peaks after d3 and falls by exactly the last day's 10 bps cost.
    assert max_drawdown(daily["net"]) == pytest.approx(-0.001, abs=1e-15)
    metrics = risk_metrics(daily["net"])
    assert metrics["annual_return"] == pytest.approx(np.mean(net) * 252, abs=1e-14)
    assert metrics["total_return"] == pytest.approx(np.prod(1 + np.array(net)) - 1, abs=1e-15)


def test_long_short_by_hand():
    result = run_strategy(SCORES.iloc[:3], RETURNS, Strategy("long_short", k=1))
    daily = result.daily
    # d0: long A (buy 1, 5 bps), short D (sell 1, 15 bps): turnover 2, cost 20 bps. d1: A +10%, D +5% -> +5%.
    # d1 close: A = 1.1 / 1.05, D = -1.05 / 1.05 = -1 -> sell 0.05 / 1.05 of A. d2: A -10%, D 0% -> -10%.
    # d2 close (growth 0.9): A = 1, D = -1 / 0.9; new book long B, short D: sell 1 A, buy 1 B, buy back 1/9 of D
    # (bought 10/9, sold 1). d3: B +10%, D -20% -> 0.1 + 0.2 = +30%.
    np.testing.assert_allclose(daily["gross"], [0.05, -0.10, 0.30], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["turnover"], [2.0, 0.05 / 1.05, 2 + 1 / 9], rtol=0, atol=1e-15)
    cost = [20 * BP, 15 * BP * 0.05 / 1.05, 5 * BP * 10 / 9 + 15 * BP]
    np.testing.assert_allclose(daily["cost"], cost, rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["net"], daily["gross"] - cost, rtol=0, atol=1e-15)
    assert daily[["long", "short"]].to_numpy().tolist() == [[1.0, 1.0]] * 3
    assert _weights(result, DATES[2]) == {"B": 1.0, "D": -1.0}


def test_turnover_limit_scales_the_trades_by_hand():
    daily = run_strategy(SCORES, RETURNS, Strategy("topk", k=2, max_turnover=0.5)).daily
    # d0: the way to A, B at 0.5 is turnover 1.0 -> half of it: A, B at 0.25, cash 0.5. d1: gross 0.025.
    # d1: A = 0.275 / 1.025, B = 0.25 / 1.025; the rest of the way is 0.5 / 1.025 < 0.5 -> all of it.
    # d2: A = 0.45 / 1.05, B = 0.6 / 1.05; the way to B, C is 1.0 -> half: sell 0.225 / 1.05 A and 0.0375 / 1.05 B,
    # buy 0.25 C. d3: B (0.5625 / 1.05) and C (0.25) earn 10% each.
    np.testing.assert_allclose(daily["turnover"], [0.5, 0.5 / 1.025, 0.5, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["gross"][:3], [0.025, 0.05, 0.05625 / 1.05 + 0.025], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["cost"][:3], [2.5 * BP, 2.5 * BP / 1.025, 5 * BP], rtol=0, atol=1e-15)


def _held(result):
    return [sorted(t for t, w in row.items() if w != 0) for _, row in result.weights.iterrows()]


def test_topk_dropout_selection_sequence():
    dates = pd.bdate_range("2024-01-01", periods=6, name="date")
    nan = np.nan
    scores = pd.DataFrame(
        [
            [6, 5, 4, 3, 2, 1],  # d0: buy the best three, A B C
            [5, 3, 2, 6, 4, 1],  # d1: held A B C + best other D -> C is the worst: sell C, buy D
            [1, 2, 4, 3, 6, 5],  # d2: held A B D + best other E -> A is the worst: sell A, buy E
            [3, 6, 2, 5, 4, 1],  # d3: held B D E + best other A -> A is the worst but not held: nothing trades
            [1, 2, 3, 4, nan, 5],  # d4: E has no score and ranks last: sell E, buy F
        ],
        index=dates[:5],
        columns=list("ABCDEF"),
    )
    returns = pd.DataFrame(0.0, index=dates, columns=list("ABCDEF"))
    result = run_strategy(scores, returns, Strategy("topk_dropout", k=3, n_drop=1))
    assert _held(result) == [list("ABC"), list("ABD"), list("BDE"), list("BDE"), list("BDF")]
    np.testing.assert_allclose(result.daily["turnover"], [1.0, 2 / 3, 2 / 3, 0.0, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.daily["cost"], [5 * BP, 20 * BP / 3, 20 * BP / 3, 0.0, 20 * BP / 3], atol=1e-15)
    assert result.daily["n_long"].tolist() == [3, 3, 3, 3, 3]


def test_topk_dropout_keeps_drifted_weights_and_buys_with_the_freed_cash():
    dates = pd.bdate_range("2024-01-01", periods=3, name="date")
    scores = pd.DataFrame([[3, 2, 1], [2, 1, 3]], index=dates[:2], columns=list("ABC"), dtype=float)
    returns = pd.DataFrame([[np.nan] * 3, [0.2, -0.2, 0.0], [0.0, 0.5, 0.1]], index=dates, columns=list("ABC"))
    result = run_strategy(scores, returns, Strategy("topk_dropout", k=2, n_drop=1))
    # d0: A, B at 0.5. d1: A +20%, B -20% -> gross 0, A = 0.6, B = 0.4; C is best and B worst: sell B (0.4, 15 bps),
    # buy C with its 0.4 (5 bps); A stays at 0.6. d2: C +10% -> gross 0.04, net 0.04 - 8 bps.
    assert _weights(result, dates[1]) == pytest.approx({"A": 0.6, "C": 0.4}, abs=1e-15)
    np.testing.assert_allclose(result.daily["gross"], [0.0, 0.04], rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.daily["turnover"], [1.0, 0.8], rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.daily["net"], [-5 * BP, 0.04 - 8 * BP], rtol=0, atol=1e-15)


def test_rebalance_every_trades_on_every_nth_decision_only_by_hand():
    result = run_strategy(SCORES, RETURNS, Strategy("topk", k=2, rebalance_every=2))
    daily = result.daily
    # d0: buy A, B (turnover 1). d1 is skipped: A = 0.55 / 1.05 and B = 0.5 / 1.05 drift through d2 (A -10%, B +20%:
    # gross 0.045 / 1.05) to A = 0.495 / 1.095 and B = 0.6 / 1.095. d2 trades to B, C at 0.5: sell 0.5475 / 1.095
    # = 0.5, buy 0.5 C (10 bps). d3 is skipped: B, C earn 10% each at d3 and hold at 0.5 through d4 (B -5%).
    np.testing.assert_allclose(daily["turnover"], [1.0, 0.0, 1.0, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["gross"], [0.05, 0.045 / 1.05, 0.10, -0.025], rtol=0, atol=1e-15)
    np.testing.assert_allclose(daily["cost"], [5 * BP, 0.0, 10 * BP, 0.0], rtol=0, atol=1e-15)
    assert result.strategy.label == "top2_every2"
    # Decision dates are counted among the dates with a score: without d1's, the trades are at d0 and d3 (which
    # switches A, B for C, D: turnover 2).
    sparse = SCORES.copy()
    sparse.iloc[1] = np.nan
    daily = run_strategy(sparse, RETURNS, Strategy("topk", k=2, rebalance_every=2)).daily
    np.testing.assert_allclose(daily["turnover"], [1.0, 0.0, 0.0, 2.0], rtol=0, atol=1e-15)
    # TopK-dropout holds through the skipped dates as through dates without a score (which, at the end, are not
    # in the results at all; a skipped date is: its holding earns d4).
    skipped = SCORES.copy()
    skipped.iloc[[1, 3]] = np.nan
    every2 = run_strategy(SCORES, RETURNS, Strategy("topk_dropout", k=2, n_drop=1, rebalance_every=2)).daily
    without = run_strategy(skipped, RETURNS, Strategy("topk_dropout", k=2, n_drop=1)).daily
    pd.testing.assert_frame_equal(every2.iloc[:3], without)
    assert every2["turnover"].iloc[[1, 3]].tolist() == [0.0, 0.0] and every2["turnover"].iloc[2] > 0


def test_buffer_keeps_a_held_name_while_it_ranks_within_k_plus_buffer_by_hand():
    result = run_strategy(SCORES, RETURNS, Strategy("topk", k=2, buffer=1))
    # d2 ranks B C A D: plain top-2 switches A for C, the buffer keeps A (3rd, within 2 + 1). d3 ranks C D A B:
    # A (3rd) stays, B (4th) goes and the best name not held, C, comes in.
    assert _held(result) == [["A", "B"], ["A", "B"], ["A", "B"], ["A", "C"]]
    assert result.strategy.label == "top2_buf1"
    # Kept names are set back to equal weight: at d2's close A = 0.45 / 1.05 and B = 0.6 / 1.05 trade 0.075 / 1.05
    # each way. At d3's close A = 0.5 / 1.05, B = 0.55 / 1.05: sell B, buy 0.025 / 1.05 of A and 0.5 of C.
    turnover = [1.0, 0.05 / 1.05, 0.15 / 1.05, 0.575 / 1.05 + 0.5]
    np.testing.assert_allclose(result.daily["turnover"], turnover, rtol=0, atol=1e-15)
    plain = run_strategy(SCORES, RETURNS, Strategy("topk", k=2)).daily
    pd.testing.assert_frame_equal(run_strategy(SCORES, RETURNS, Strategy("topk", k=2, buffer=0)).daily, plain)
    with pytest.raises(ValueError, match="buffer"):
        Strategy("long_short", k=2, buffer=1)


def test_buffer_drops_held_names_without_a_score_and_fills_from_the_top():
    dates = pd.bdate_range("2024-01-01", periods=4, name="date")
    nan = np.nan
    scores = pd.DataFrame(
        [
            [3, 2, 1, 0],  # d0: A, B
            [nan, 1, 2, 3],  # d1: A has no score and goes; B is 3rd of D C B, within 2 + 2: kept; D, the best, enters
            [nan, nan, 2, nan],  # d2: one name scored: the book is C alone
        ],
        index=dates[:3],
        columns=list("ABCD"),
    )
    returns = pd.DataFrame(0.0, index=dates, columns=list("ABCD"))
    result = run_strategy(scores, returns, Strategy("topk", k=2, buffer=2))
    assert _held(result) == [["A", "B"], ["B", "D"], ["C"]]
    np.testing.assert_allclose(result.daily["turnover"], [1.0, 1.0, 2.0], rtol=0, atol=1e-15)


@pytest.fixture(scope="module")
def noisy_market():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2023-01-02", periods=40, name="date")
    tickers = [f"T{i:02d}" for i in range(12)]
    returns = pd.DataFrame(rng.normal(0, 0.02, (40, 12)), index=dates, columns=tickers)
    returns.iloc[0] = np.nan
    scores = pd.DataFrame(rng.normal(size=(39, 12)), index=dates[:39], columns=tickers)
    scores = scores.mask(rng.random(scores.shape) < 0.15)
    return scores, returns


def test_the_engine_matches_the_day_by_day_pandas_reference(noisy_market):
    path = ROOT / "benchmarks" / "backtest_engine.py"
    spec = importlib.util.spec_from_file_location("backtest_engine_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    scores, returns = noisy_market
    pred = scores.stack().rename_axis(["date", "ticker"])
    for strategy in (
        Strategy("topk", k=4),
        Strategy("topk", k=4, max_turnover=0.3),
        Strategy("long_short", k=3, open_cost_bps=2.0, close_cost_bps=7.0),
        Strategy("long_short", k=3, max_turnover=0.5),
        Strategy("topk_dropout", k=4, n_drop=2),
    ):
        ours, ref = run_strategy(pred, returns, strategy).daily, bench.reference_backtest(pred, returns, strategy)
        for column in ("gross", "net", "turnover"):
            np.testing.assert_allclose(ours[column], ref[column], rtol=0, atol=1e-12, err_msg=strategy.label)


def test_a_position_earns_the_next_session_not_the_scored_one(noisy_market):
    _, returns = noisy_market
    following = returns.shift(-1).iloc[:-1]  # at D: the return from D to D+1, only known at D+1
    same_day = returns.iloc[1:-1]  # at D: the return up to D, known at D's close
    zero_cost = {"open_cost_bps": 0.0, "close_cost_bps": 0.0}
    foresight = run_strategy(following, returns, Strategy("topk", k=1, **zero_cost)).daily
    np.testing.assert_allclose(foresight["gross"], returns.iloc[1:].max(axis=1), rtol=0, atol=1e-15)
    known = run_strategy(same_day, returns, Strategy("topk", k=1, **zero_cost)).daily
    yesterday_best = same_day.to_numpy().argmax(axis=1)
    earned = returns.iloc[2:].to_numpy()[np.arange(len(yesterday_best)), yesterday_best]
    np.testing.assert_allclose(known["gross"], earned, rtol=0, atol=1e-15)
    assert known["gross"].mean() < foresight["gross"].mean() / 3
    # The same in the signal: the label of D is the return from D to D+1, so the next-day return scores a perfect
    # rank IC and the same-day one does not.
    label = forward_returns_from_returns(returns, 1)
    assert signal_metrics(following.stack(), label).metrics["rank_ic"] == pytest.approx(1.0, abs=1e-12)
    assert abs(signal_metrics(same_day.stack(), label).metrics["rank_ic"]) < 0.2


def test_results_up_to_a_day_ignore_every_later_prediction(noisy_market):
    scores, returns = noisy_market
    cut = scores.index[20]
    for strategy in (Strategy("topk", k=3), Strategy("topk_dropout", k=3, n_drop=1), Strategy("long_short", k=2)):
        full = run_strategy(scores, returns, strategy).daily
        changed = scores.copy()
        changed.loc[changed.index > cut] = -changed.loc[changed.index > cut]
        other = run_strategy(changed, returns, strategy).daily
        upto = full.index <= returns.index[returns.index.get_loc(cut) + 1]
        pd.testing.assert_frame_equal(full[upto], other[upto])
        assert not full["gross"].equals(other["gross"])


def test_delay_trades_later_and_dates_without_scores_hold():
    delayed = run_strategy(SCORES.iloc[:3], RETURNS, Strategy("topk", k=2, delay=1)).daily
    shifted = SCORES.iloc[:3].set_axis(DATES[1:4])
    pd.testing.assert_frame_equal(delayed, run_strategy(shifted, RETURNS, Strategy("topk", k=2)).daily)
    sparse = SCORES.copy()
    sparse.iloc[1] = np.nan  # no prediction at d1: A and B are held through it
    daily = run_strategy(sparse, RETURNS, Strategy("topk", k=2)).daily
    np.testing.assert_allclose(daily["turnover"][:2], [1.0, 0.0], rtol=0, atol=1e-15)
    assert daily["gross"].iloc[1] == pytest.approx((0.55 * -0.10 + 0.5 * 0.20) / 1.05, abs=1e-15)


def test_benchmarks_and_input_checks():
    ew = equal_weight_returns(SCORES, RETURNS)
    np.testing.assert_allclose(ew, RETURNS.iloc[1:].mean(axis=1), rtol=0, atol=1e-15)
    close = pd.Series([100.0, 101.0, 99.99, 100.0, 103.0, 104.0], index=pd.bdate_range("2023-12-29", periods=6))
    np.testing.assert_allclose(index_returns(close, DATES).iloc[1:], [-0.01, 0.01 / 99.99, 0.03, 1 / 103], atol=1e-15)
    prices = pd.DataFrame({"A": [10.0, 11.0, np.nan, 12.1]}, index=DATES[:4])
    np.testing.assert_allclose(returns_from_prices(prices)["A"], [np.nan, 0.1, 0.0, 0.1], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="not sessions"):
        run_strategy(SCORES.set_axis(DATES[:3].append(pd.DatetimeIndex(["2024-01-06"]))), RETURNS, Strategy())
    with pytest.raises(ValueError, match="no returns"):
        run_strategy(SCORES.assign(Z=1.0), RETURNS, Strategy())
    with pytest.raises(ValueError, match="max_turnover"):
        Strategy("topk_dropout", max_turnover=0.1)


def test_risk_metrics_by_hand():
    dates = pd.bdate_range("2024-01-01", periods=4)
    r = pd.Series([0.10, -0.20, 0.05, 0.0], index=dates)
    b = pd.Series([0.05, -0.10, 0.0, 0.05], index=dates)
    m = risk_metrics(r, b)
    std = np.sqrt(0.051875 / 3)  # deviations from the mean -0.0125: 0.1125, -0.1875, 0.0625, 0.0125
    assert m["total_return"] == pytest.approx(1.1 * 0.8 * 1.05 - 1, abs=1e-15)
    assert m["annual_return"] == pytest.approx(-0.0125 * 252, abs=1e-13)
    assert m["cagr"] == pytest.approx(0.924**63 - 1, abs=1e-14)
    assert m["annual_vol"] == pytest.approx(std * np.sqrt(252), abs=1e-14)
    assert m["sharpe"] == pytest.approx(-0.0125 / std * np.sqrt(252), abs=1e-12)
    assert m["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1, abs=1e-15)
    # Excess 0.05, -0.10, 0.05, -0.05: mean -0.0125, std 0.075; its wealth 1.05, 0.945, 0.99225, 0.9426375.
    assert m["excess_annual_return"] == pytest.approx(-0.0125 * 252, abs=1e-13)
    assert m["tracking_error"] == pytest.approx(0.075 * np.sqrt(252), abs=1e-13)
    assert m["information_ratio"] == pytest.approx(-0.0125 / 0.075 * np.sqrt(252), abs=1e-12)
    assert m["excess_max_drawdown"] == pytest.approx(0.9426375 / 1.05 - 1, abs=1e-15)
    assert m["excess_max_drawdown_sum"] == pytest.approx(-0.10, abs=1e-15)  # Qlib's: on the running sum
    assert drawdown(pd.Series([-0.1, 0.05])).tolist() == pytest.approx([-0.1, -0.055], abs=1e-15)  # 1 is a peak


def test_beta_and_alpha_against_the_benchmark_by_the_textbook_formulas():
    dates = pd.bdate_range("2024-01-01", periods=5)
    b = pd.Series([0.01, -0.02, 0.03, 0.0, -0.01], index=dates)
    noise = np.array([0.002, -0.001, 0.0, -0.002, 0.001])
    r = 0.001 + 0.5 * b + noise
    m = risk_metrics(r, b)
    x, y = b.to_numpy(), r.to_numpy()
    sxx = ((x - x.mean()) ** 2).sum()
    beta = ((x - x.mean()) * (y - y.mean())).sum() / sxx
    alpha = y.mean() - beta * x.mean()
    s2 = ((y - alpha - beta * x) ** 2).sum() / (len(x) - 2)
    assert m["beta"] == pytest.approx(beta, abs=1e-12)
    assert m["alpha"] == pytest.approx(alpha * 252, abs=1e-12)
    assert m["alpha_t"] == pytest.approx(alpha / np.sqrt(s2 * (1 / len(x) + x.mean() ** 2 / sxx)), rel=1e-9)
    assert 0.3 < m["beta"] < 0.7  # the 0.5 it was built with, moved by the noise only


def test_per_year_breakdown_by_hand():
    dates = pd.DatetimeIndex(["2020-12-30", "2020-12-31", "2021-01-04", "2021-01-05"])
    net = pd.Series([0.1, -0.1, 0.2, 0.0], index=dates)
    bench = pd.DataFrame({"index": [0.0, 0.0, 0.1, 0.1]}, index=dates)
    table = per_year(net, bench, gross=net + 0.01, turnover=pd.Series([1.0, 0.5, 0.2, 0.4], index=dates))
    assert table.index.tolist() == [2020, 2021]
    np.testing.assert_allclose(table["return"], [1.1 * 0.9 - 1, 0.2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(table["gross_return"], [1.11 * 0.91 - 1, 0.21 * 1.01 + 0.01], rtol=0, atol=1e-15)
    np.testing.assert_allclose(table["index_return"], [0.0, 0.21], rtol=0, atol=1e-15)
    np.testing.assert_allclose(table["excess_index"], [1.1 * 0.9 - 1, -0.01], rtol=0, atol=1e-15)
    np.testing.assert_allclose(table["max_drawdown"], [-0.1, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(table["turnover"], [0.75, 0.3], rtol=0, atol=1e-15)


def test_per_year_beta_alpha_and_cost_drag_are_the_summary_definitions_year_by_year():
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2020-12-01", "2021-01-29")
    bench = pd.Series(rng.normal(0, 0.01, len(dates)), index=dates)
    net = 0.0004 + 1.3 * bench + pd.Series(rng.normal(0, 0.005, len(dates)), index=dates)
    gross = net + 0.002  # 20 bps of cost a day: a cost drag of 0.002 x 252 = 50.4% a year
    table = per_year(net, bench.to_frame("index"), gross=gross)
    assert table.index.tolist() == [2020, 2021]
    np.testing.assert_allclose(table["cost_drag"], [0.504, 0.504], rtol=0, atol=1e-12)
    assert cost_drag(gross, net) == pytest.approx(
        risk_metrics(gross)["annual_return"] - risk_metrics(net)["annual_return"]
    )
    for year, rows in ((2020, dates.year == 2020), (2021, dates.year == 2021)):
        fit = beta_alpha(net[rows], bench)
        assert table.loc[year, ["beta_index", "alpha_index", "alpha_t_index"]].tolist() == pytest.approx(
            [fit["beta"], fit["alpha"], fit["alpha_t"]], rel=1e-12
        )
        assert table.loc[year, "gross_alpha_index"] == pytest.approx(fit["alpha"] + 0.504, rel=1e-9)
        assert 1.1 < table.loc[year, "beta_index"] < 1.5
    spread = per_year(net, bench.to_frame("index"), gross=gross, excess=False)
    assert "beta_index" in spread and not {"index_return", "excess_index", "ir_index"} & set(spread.columns)


def test_the_ex_ante_beta_uses_only_earlier_days_and_hedges_to_beta_zero():
    rng = np.random.default_rng(1)
    dates = pd.bdate_range("2024-01-01", periods=100)
    bench = pd.Series(rng.normal(0, 0.01, 100), index=dates)
    book = pd.DataFrame({"net": 2.0 * bench})
    book["gross"] = book["net"] + 0.001
    hedged = beta_hedged(book, bench)
    # 1.0 until 20 earlier days exist, then the exact 2.0: the hedged net return is b_t for 20 days, 0 after.
    np.testing.assert_allclose(hedged["hedge_ratio"], [1.0] * 20 + [2.0] * 80, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hedged["net"], np.r_[bench.to_numpy()[:20], np.zeros(80)], rtol=0, atol=1e-15)
    np.testing.assert_allclose(hedged["gross"] - hedged["net"], 0.001, rtol=0, atol=1e-15)
    # On noisy returns: the least-squares beta of the 60 days before t (t itself is never in it).
    noisy = 0.8 * bench + pd.Series(rng.normal(0, 0.01, 100), index=dates)
    beta = ex_ante_beta(noisy, bench)
    for t in (30, 70, 99):
        window = slice(max(0, t - 60), t)
        expected = np.polyfit(bench.iloc[window], noisy.iloc[window], 1)[0]
        assert beta.iloc[t] == pytest.approx(expected, rel=1e-10)
    changed = noisy.copy()
    changed.iloc[70] += 1.0
    pd.testing.assert_series_equal(ex_ante_beta(changed, bench).iloc[:71], beta.iloc[:71])


class _Spy:
    """A model that records the dates it was trained on and predicts the date it scores."""

    fitted: ClassVar[list] = []

    def fit(self, X, y):
        self.seen = X.index.get_level_values("date")
        return self

    def predict(self, X):
        _Spy.fitted.append((self.seen.max(), X.index.get_level_values("date").min()))
        return pd.Series(0.0, index=X.index)


def _three_tickers():
    """120 sessions of three tickers: the dates, the index, a feature and a zero label."""
    dates = pd.bdate_range("2022-01-03", periods=120, name="date")
    index = pd.MultiIndex.from_product([dates, ["A", "B", "C"]], names=["date", "ticker"])
    X = pd.DataFrame({"x": np.arange(len(index), dtype=float)}, index=index)
    return dates, index, X, pd.Series(0.0, index=index)


def test_walk_forward_models_never_see_the_day_they_score():
    horizon = 5
    dates, index, X, y = _three_tickers()
    folds = walk_forward_folds(index, 4, 40, purge=horizon)
    _Spy.fitted = []
    pred = walk_forward_predictions(X, y, folds, _Spy)
    assert len(_Spy.fitted) == 4 and pred.index.get_level_values("date").min() == folds[0].test_start
    for last_trained, first_scored in _Spy.fitted:
        # The last training row's h-session label ends before the first scored day: nothing of that day is seen.
        assert dates.get_loc(last_trained) + horizon < dates.get_loc(first_scored)


class _UpdatedSpy(_Spy):
    """A spy that also records each update's rows."""

    updates: ClassVar[list] = []

    def update(self, X, y, rounds):
        dates = X.index.get_level_values("date")
        _UpdatedSpy.updates.append((dates.min(), dates.max(), rounds))
        self.seen = self.seen.append(dates)
        return self


def test_updates_between_refits_only_read_labels_known_before_the_day_they_score():
    horizon = 5
    dates, index, X, y = _three_tickers()
    folds = walk_forward_folds(index, 2, 40, purge=horizon)
    _Spy.fitted, _UpdatedSpy.updates = [], []
    schedule = UpdateSchedule(every=3, rounds=7, window=10, gap=horizon)
    pred = walk_forward_predictions(X, y, folds, _UpdatedSpy, schedule)
    assert pred.index.equals(X.index[X.index.get_level_values("date") >= folds[0].test_start])
    blocks = sum(-(-len(dates[(dates >= f.test_start) & (dates <= f.test_end)]) // 3) for f in folds)
    assert len(_Spy.fitted) == blocks  # one prediction per 3-session chunk
    assert len(_UpdatedSpy.updates) == blocks - len(folds)  # every chunk but each fold's first is preceded by one
    for last_trained, first_scored in _Spy.fitted:
        assert dates.get_loc(last_trained) + horizon < dates.get_loc(first_scored)
    for first, last, rounds in _UpdatedSpy.updates:
        assert rounds == 7 and dates.get_loc(last) - dates.get_loc(first) == 9  # the newest 10 labelled sessions
    with pytest.raises(ValueError, match="at least 1"):
        UpdateSchedule(every=0, rounds=1, window=1, gap=1)
