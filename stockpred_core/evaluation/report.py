"""The evaluation report: signal metrics, portfolios after costs against benchmarks, a per-year breakdown, plots
(`plots.py`) and a self-contained HTML file (`html_report.py`).

    report = build_report(pred, returns, index_close=gspc_close, horizon=1)
    report.metrics()                  # flat {name: float} for MLflow / Dagster metadata
    report.figures()                  # {"cumulative_return": Figure, "ic": Figure, "drawdown": Figure}
    report.markdown()                 # the headline tables as Markdown (Dagster's MetadataValue.md)
    report.to_html("backtest.html")   # tables and PNG plots embedded in one file

`pred` holds scores known at each date's close ((date, ticker) series); `returns` daily close-to-close returns
(date x ticker, `returns.returns_from_prices`). Conventions: `core.portfolio` (timing, turnover, costs),
`core.performance` (annualization, drawdown, beta and alpha, cost drag, the beta hedge),
`core.backtest.signal_metrics` (IC, t-statistics).

The summary has a row per book gross and net of costs, one per benchmark, and with an index the primary book (the
first long-only one) hedged to beta 0 with the index (`<book> beta_neutral`, net of the book's costs). Every book
row has its beta, alpha and alpha_t against each benchmark; excess return, information ratio and tracking error only
for long-only books (a long-short or hedged book is no bet on beating a benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from stockpred_core.evaluation.backtest import SignalResult, signal_metrics
from stockpred_core.evaluation.html_report import html_report
from stockpred_core.evaluation.performance import (
    beta_alpha,
    beta_hedged,
    cost_drag,
    per_year,
    risk_metrics,
    signal_by_year,
)
from stockpred_core.evaluation.plots import cumulative_return_figure, drawdown_figure, ic_figure
from stockpred_core.evaluation.portfolio import PortfolioResult, equal_weight_returns, run_strategy
from stockpred_core.evaluation.returns import forward_returns_from_returns, index_returns, to_wide
from stockpred_core.evaluation.strategies import Strategy
from stockpred_core.evaluation.tables import markdown_table

# Qlib's benchmark setting: TopK 50 / drop 5, 5 bps to open and 15 bps to close; beside it the plain top-k book and
# the long-short spread, which isolates the signal from the market.
DEFAULT_STRATEGIES = (
    Strategy("topk_dropout", k=50, n_drop=5),
    Strategy("topk", k=50),
    Strategy("long_short", k=50),
)
EQUAL_WEIGHT = "equal_weight"
SIGNAL_HEADLINE = ("ic", "icir", "ic_t", "rank_ic", "rank_icir", "rank_ic_t", "hit_rate", "mse_vs_naive", "oos_r2")
SUMMARY_HEADLINE = ("annual_return", "sharpe", "max_drawdown", "turnover", "cost_drag")
BENCHMARK_HEADLINE = ("excess", "ir", "beta", "alpha", "alpha_t")  # per benchmark: `<figure>_<benchmark>`
BETA_NEUTRAL = "beta_neutral"


@dataclass(frozen=True)
class EvaluationReport:
    title: str
    horizon: int
    signal: SignalResult
    portfolios: dict[str, PortfolioResult]
    benchmarks: pd.DataFrame  # daily benchmark returns, indexed like the portfolios' daily frames
    summary: pd.DataFrame  # one row per series: each strategy gross and net, each benchmark, the beta-neutral book
    per_year: dict[str, pd.DataFrame]  # by strategy label, and `<primary> beta_neutral`
    signal_per_year: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # The primary book hedged with the index (gross, net, hedge_ratio by date); None without an index.
    beta_neutral: pd.DataFrame | None = None

    @property
    def primary(self) -> str:
        """The book the headline describes and the beta-neutral book hedges: the first long-only one."""
        return _primary(self.portfolios)

    @property
    def beta_neutral_name(self) -> str:
        return f"{self.primary} {BETA_NEUTRAL}"

    @property
    def period(self) -> str:
        dates = self.signal.rank_ic.index
        return f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}" if len(dates) else "-"

    def metrics(self) -> dict[str, float]:
        """Every figure as one flat dict: `signal.<metric>`, `<strategy>.<gross|net>.<metric>`, `<benchmark>.<metric>`
        (names MLflow accepts as metric keys). NaNs are left out."""
        flat = {f"signal.{k}": v for k, v in self.signal.metrics.items()}
        for row, values in self.summary.iterrows():
            flat |= {f"{row.replace(' ', '.')}.{k}": float(v) for k, v in values.items()}
        return {k: v for k, v in flat.items() if v is not None and math.isfinite(v)}

    def figures(self) -> dict[str, Figure]:
        long_only = [name for name, p in self.portfolios.items() if p.strategy.long_only]
        reference = next((c for c in self.benchmarks.columns if c != EQUAL_WEIGHT), EQUAL_WEIGHT)
        daily = {name: p.daily for name, p in self.portfolios.items()}
        if self.beta_neutral is not None:
            daily[self.beta_neutral_name] = self.beta_neutral
        returns = {f"{name} net": frame["net"] for name, frame in daily.items()}
        return {
            "cumulative_return": cumulative_return_figure(daily, self.benchmarks, long_only, reference),
            "ic": ic_figure(self.signal.ic, self.signal.rank_ic),
            "drawdown": drawdown_figure(returns | dict(self.benchmarks.items())),
        }

    def headline_summary(self) -> pd.DataFrame:
        """The books and benchmarks (rows) by their headline figures, and per benchmark the excess return,
        information ratio, beta, alpha and its t-statistic."""
        benchmarks = [str(b) for b in self.benchmarks.columns]
        per_benchmark = [f"{kind}_{b}" for b in benchmarks for kind in BENCHMARK_HEADLINE]
        return self.summary.reindex(columns=[*SUMMARY_HEADLINE, *per_benchmark])

    def markdown(self) -> str:
        """The signal and portfolio headline tables in Markdown."""
        signal = pd.DataFrame({k: [self.signal.metrics[k]] for k in SIGNAL_HEADLINE}, index=["signal"])
        return (
            f"**{self.title}** ({self.period}, horizon {self.horizon})\n\n"
            + markdown_table(signal)
            + "\n\n"
            + markdown_table(self.headline_summary())
        )

    def to_html(self, path: str | Path | None = None) -> str:
        """The whole report as one HTML page (plots as embedded PNG); written to `path` when given."""
        page = html_report(self)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page


def build_report(
    pred: pd.Series,
    returns: pd.DataFrame,
    *,
    label: pd.Series | None = None,
    horizon: int = 1,
    strategies: Iterable[Strategy] = DEFAULT_STRATEGIES,
    index_close: pd.Series | None = None,
    index_name: str = "index",
    title: str = "Backtest report",
) -> EvaluationReport:
    """Evaluate out-of-sample predictions: the signal against `label` (default: the `horizon`-session forward return
    from `returns`), each strategy after costs, against the index (when `index_close` is given) and the
    equal-weighted universe of the predicted tickers."""
    returns, strategies = to_wide(returns), tuple(strategies)
    if label is None:
        label = forward_returns_from_returns(returns, horizon)
    signal = signal_metrics(pred, label, horizon)
    portfolios = {s.label: run_strategy(pred, returns, s) for s in strategies}
    if len(portfolios) != len(strategies):
        raise ValueError("strategies need distinct labels (set Strategy.name)")
    dates = pd.DatetimeIndex(sorted(set().union(*(p.daily.index for p in portfolios.values()))), name="date")
    benchmarks = pd.DataFrame(index=dates)
    if index_close is not None:
        benchmarks[index_name] = index_returns(index_close, returns.index).reindex(dates)
    benchmarks[EQUAL_WEIGHT] = equal_weight_returns(pred, returns).reindex(dates)
    rows, years, notes = {}, {}, []
    if index_close is not None and len(index_close) and pd.Timestamp(index_close.index.max()) < dates.max():
        # its last close is carried: every later return of the index is 0, and its beta and alpha figures with it
        notes.append(
            f"the {index_name} closes end on {index_close.index.max():%Y-%m-%d}, before {dates.max():%Y-%m-%d}"
        )
    for name, result in portfolios.items():
        daily = result.daily
        exposure = {
            "turnover": float(daily["turnover"].mean()),
            "cost_drag": cost_drag(daily["gross"], daily["net"]),
            "long_exposure": float(daily["long"].mean()),
            "short_exposure": float(daily["short"].mean()),
            "positions": float((daily["n_long"] + daily["n_short"]).mean()),
        }
        long_only = result.strategy.long_only
        for kind in ("gross", "net"):
            rows[f"{name} {kind}"] = _row(daily[kind], benchmarks, excess=long_only) | exposure
        years[name] = per_year(
            daily["net"], benchmarks, gross=daily["gross"], turnover=daily["turnover"], excess=long_only
        )
    hedged = None
    if index_close is not None:
        primary = _primary(portfolios)
        hedged = beta_hedged(portfolios[primary].daily, benchmarks[index_name])
        name = f"{primary} {BETA_NEUTRAL}"
        rows[name] = _row(hedged["net"], benchmarks, excess=False) | {
            key: rows[f"{primary} net"][key] for key in ("turnover", "cost_drag")
        }
        rows[name] |= {
            "hedge_ratio": float(hedged["hedge_ratio"].mean()),
            "hedge_turnover": float(hedged["hedge_ratio"].diff().abs().mean()),
        }
        years[name] = per_year(hedged["net"], benchmarks, gross=hedged["gross"], excess=False)
    for column, series in benchmarks.items():
        rows[str(column)] = _row(series.dropna(), pd.DataFrame(index=dates))
        if series.isna().any():
            notes.append(f"benchmark {column} has no return on {int(series.isna().sum())} of the dates")
    return EvaluationReport(
        title=title,
        horizon=horizon,
        signal=signal,
        portfolios=portfolios,
        benchmarks=benchmarks,
        summary=pd.DataFrame.from_dict(rows, orient="index"),
        per_year=years,
        signal_per_year=signal_by_year(signal.ic, signal.rank_ic),
        notes=notes,
        beta_neutral=hedged,
    )


def _primary(portfolios: dict[str, PortfolioResult]) -> str:
    return next((name for name, p in portfolios.items() if p.strategy.long_only), next(iter(portfolios)))


def _row(returns: pd.Series, benchmarks: pd.DataFrame, excess: bool = True) -> dict[str, float]:
    """`risk_metrics` of the returns, and per benchmark beta, alpha and alpha_t (with `excess`, the excess return,
    information ratio, tracking error and excess drawdowns too), as `<figure>_<benchmark>`."""
    row = risk_metrics(returns)
    for name, bench in benchmarks.items():
        if excess:
            relative = risk_metrics(returns, bench)
            row |= {
                f"excess_{name}": relative["excess_annual_return"],
                f"ir_{name}": relative["information_ratio"],
                f"excess_max_drawdown_{name}": relative["excess_max_drawdown"],
                f"excess_max_drawdown_sum_{name}": relative["excess_max_drawdown_sum"],
                f"tracking_error_{name}": relative["tracking_error"],
            }
        row |= {f"{figure}_{name}": value for figure, value in beta_alpha(returns, bench).items()}
    return row
