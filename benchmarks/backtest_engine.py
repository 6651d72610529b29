"""The vectorized evaluation engine on the real S&P 500 file, beside a plain pandas reference that loops over days.

    .venv/bin/python benchmarks/backtest_engine.py [--signal momentum|random] [--repeat 3]

Data: ../shared/data/market/all_stocks_5yr.csv.gz, 505 tickers x 1,259 sessions (2013-02-08..2018-02-07), returns
from the close (the file is split-adjusted) carried over missing sessions. Signal: 20-session momentum (close(D) /
close(D-20) - 1, known at D's close), or seeded Gaussian noise, on every (date, ticker) with a bar. Reading the file
and building the wide price frame are not timed; the engine is timed from the long (date, ticker) prediction series,
as an asset hands it over. Each time is the best of --repeat runs.

The reference is the same accounting written the obvious way: a Python loop over the days holding pandas Series
(reindex, sort_values, sub with fill_value), Qlib's TopK-dropout steps with pandas Index operations. It also checks
the engine: the largest difference between their daily net returns and turnover is printed beside the timings.
The signal rows compare `daily_ic` (one wide-matrix pass) with a groupby-apply per date.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stockpred_core.evaluation.backtest import daily_ic  # noqa: E402
from stockpred_core.evaluation.portfolio import run_strategy  # noqa: E402
from stockpred_core.evaluation.report import build_report  # noqa: E402
from stockpred_core.evaluation.returns import forward_returns_from_returns, returns_from_prices  # noqa: E402
from stockpred_core.evaluation.strategies import Strategy  # noqa: E402

SP500 = ROOT.parent / "shared" / "data" / "market" / "all_stocks_5yr.csv.gz"
GSPC = ROOT.parent / "shared" / "data" / "market" / "GSPC.csv"
STRATEGIES = (
    Strategy("topk", k=50),
    Strategy("topk", k=50, max_turnover=0.2),
    Strategy("long_short", k=50),
    Strategy("topk_dropout", k=50, n_drop=5),
)


def load_prices() -> pd.DataFrame:
    raw = pd.read_csv(SP500, usecols=["date", "close", "Name"], parse_dates=["date"])
    return raw.pivot(index="date", columns="Name", values="close").rename_axis(columns="ticker").sort_index()


def make_signal(prices: pd.DataFrame, kind: str) -> pd.Series:
    if kind == "momentum":
        wide = prices / prices.shift(20) - 1.0
    else:
        noise = np.random.default_rng(0).normal(size=prices.shape)
        wide = pd.DataFrame(noise, index=prices.index, columns=prices.columns).where(prices.notna())
    return wide.stack().rename("prediction").rename_axis(["date", "ticker"])


def reference_backtest(pred: pd.Series, returns: pd.DataFrame, strategy: Strategy) -> pd.DataFrame:
    """Day by day with pandas Series: drift the book, choose the new one, trade, earn the next session's return."""
    sessions = returns.index
    by_date = dict(iter(pred.groupby(level="date")))
    decisions = [d for d in sessions[:-1] if d in by_date]
    book = pd.Series(dtype=float)
    rows = {}
    for day in decisions:
        scores = by_date[day].droplevel("date")
        today = returns.loc[day]
        if len(book):
            moved = today.reindex(book.index).fillna(0.0)
            book = book * (1.0 + moved) / (1.0 + (book * moved).sum())
        before = book
        ranked = scores.sort_values(ascending=False, kind="stable")
        if strategy.kind == "topk":
            top = ranked.index[: strategy.k]
            target = pd.Series(1.0 / len(top), index=top)
        elif strategy.kind == "long_short":
            m = min(strategy.k, len(ranked) // 2)
            target = pd.concat(
                [pd.Series(1.0 / m, index=ranked.index[:m]), pd.Series(-1.0 / m, index=ranked.index[-m:])]
            )
        else:
            k, n_drop = strategy.k, strategy.n_drop
            last = scores.reindex(before.index[before != 0]).sort_values(ascending=False, kind="stable").index
            new = ranked[~ranked.index.isin(last)].index[: n_drop + k - len(last)]
            comb = scores.reindex(last.union(new)).sort_values(ascending=False, kind="stable").index
            sell = last[last.isin(comb[-n_drop:])]
            buy = new[: len(sell) + k - len(last)]
            kept = before[before != 0].drop(sell)
            target = pd.concat([kept, pd.Series((1.0 - kept.sum()) / max(len(buy), 1), index=buy)])
        trades = target.sub(before, fill_value=0.0)
        if strategy.max_turnover is not None and trades.abs().sum() > strategy.max_turnover:
            trades = trades * strategy.max_turnover / trades.abs().sum()
            target = before.add(trades, fill_value=0.0)
        bought, sold = trades.clip(lower=0).sum(), -trades.clip(upper=0).sum()
        following = sessions[sessions.get_loc(day) + 1]
        gross = (target * returns.loc[following].reindex(target.index).fillna(0.0)).sum()
        cost = (bought * strategy.open_cost_bps + sold * strategy.close_cost_bps) / 1e4
        rows[following] = {"gross": gross, "net": gross - cost, "turnover": bought + sold}
        book = target[target != 0]
    return pd.DataFrame.from_dict(rows, orient="index")


def groupby_ic(pred: pd.Series, label: pd.Series, method: str) -> pd.Series:
    frame = pd.concat({"pred": pred, "label": label}, axis=1, join="inner").dropna()
    if method == "spearman":
        frame = frame.groupby(level="date").rank()
    return frame.groupby(level="date").apply(lambda g: g["pred"].corr(g["label"])).dropna()


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", choices=["momentum", "random"], default="momentum")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-repeat", type=int, default=1)
    args = parser.parse_args()
    if not SP500.is_file():
        sys.exit(f"{SP500} not found: this benchmark reads ../shared/data")
    prices = load_prices()
    returns = returns_from_prices(prices)
    pred = make_signal(prices, args.signal)
    print(
        f"S&P 500 file: {prices.shape[1]} tickers x {prices.shape[0]} sessions; {args.signal} signal, "
        f"{len(pred):,} predictions; best of {args.repeat} (reference: {args.reference_repeat})\n"
    )
    header = f"{'':28} {'engine s':>9} {'reference s':>12} {'ratio':>7} {'max |diff| net':>15} {'turnover/day':>13}"
    print(header)
    for strategy in STRATEGIES:
        ours, result = best_of(args.repeat, lambda s=strategy: run_strategy(pred, returns, s))
        theirs, ref = best_of(args.reference_repeat, lambda s=strategy: reference_backtest(pred, returns, s))
        daily = result.daily
        diff = max(
            float((daily["net"] - ref["net"]).abs().max()), float((daily["turnover"] - ref["turnover"]).abs().max())
        )
        print(
            f"{strategy.label:28} {ours:>9.4f} {theirs:>12.3f} {theirs / ours:>6.0f}x {diff:>15.2e} "
            f"{daily['turnover'].mean():>13.1%}"
        )
    label = forward_returns_from_returns(returns, 1)
    for method in ("pearson", "spearman"):
        ours, ic = best_of(args.repeat, lambda m=method: daily_ic(pred, label, m))
        theirs, ref = best_of(args.reference_repeat, lambda m=method: groupby_ic(pred, label, m))
        diff = float((ic - ref).abs().max())
        name = f"daily {'rank ' if method == 'spearman' else ''}IC"
        print(f"{name:28} {ours:>9.4f} {theirs:>12.3f} {theirs / ours:>6.0f}x {diff:>15.2e}")
    index_close = pd.read_csv(GSPC, parse_dates=["Date"]).set_index("Date")["Adj Close"]
    began = time.perf_counter()
    report = build_report(pred, returns, index_close=index_close, index_name="sp500", strategies=STRATEGIES)
    built = time.perf_counter() - began
    began = time.perf_counter()
    page = report.to_html()
    drawn = time.perf_counter() - began
    print(
        f"\nbuild_report (signal + {len(STRATEGIES)} strategies + benchmarks + tables): {built:.2f} s; "
        f"plots and HTML ({len(page) / 1e6:.1f} MB): {drawn:.2f} s\n"
    )
    columns = ["annual_return", "sharpe", "max_drawdown", "turnover", "excess_sp500", "ir_sp500"]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(report.summary[columns].round(4).to_string())


if __name__ == "__main__":
    main()
