"""The evaluation report: signal metrics, portfolios after costs against benchmarks, a per-year breakdown, plots
(`plots.py`) and a self-contained HTML file (`html_report.py`).

    report = build_report(pred, returns, index_close=gspc_close, horizon=1)
    report.metrics()                  # flat {name: float} for MLflow / Dagster metadata
    report.figures()                  # {"cumulative_return": Figure, "ic": Figure, "drawdown": Figure}
    report.markdown()                 # the headline tables as Markdown (Dagster's MetadataValue.md)
    report.to_html("backtest.html")   # tables and PNG plots embedded in one file

`pred` holds scores known at each date's close ((date, ticker) series); `returns` daily close-to-close returns
(date x ticker, `returns.returns_from_prices`). Conventions: `core.portfolio` (timing, turnover, costs),
`core.performance` (annualization, drawdown), `core.backtest.signal_metrics` (IC, t-statistics).
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
from stockpred_core.evaluation.performance import per_year, risk_metrics, signal_by_year
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
SUMMARY_HEADLINE = ("annual_return", "sharpe", "max_drawdown", "turnover")


@dataclass(frozen=True)
class EvaluationReport:
    title: str
    horizon: int
    signal: SignalResult
    portfolios: dict[str, PortfolioResult]
    benchmarks: pd.DataFrame  # daily benchmark returns, indexed like the portfolios' daily frames
    summary: pd.DataFrame  # one row per series: each strategy gross and net, each benchmark
    per_year: dict[str, pd.DataFrame]  # by strategy label
    signal_per_year: pd.DataFrame
    notes: list[str] = field(default_factory=list)

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
        returns = {f"{name} net": p.daily["net"] for name, p in self.portfolios.items()}
        return {
            "cumulative_return": cumulative_return_figure(
                {name: p.daily for name, p in self.portfolios.items()}, self.benchmarks, long_only, reference
            ),
            "ic": ic_figure(self.signal.ic, self.signal.rank_ic),
            "drawdown": drawdown_figure(returns | dict(self.benchmarks.items())),
        }

    def headline_summary(self) -> pd.DataFrame:
        """The books and benchmarks (rows) by their headline figures, excess and information ratio per benchmark."""
        benchmarks = [str(b) for b in self.benchmarks.columns]
        return self.summary[[*SUMMARY_HEADLINE, *(f"{kind}_{b}" for b in benchmarks for kind in ("excess", "ir"))]]

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
    for name, result in portfolios.items():
        daily = result.daily
        against = benchmarks if result.strategy.long_only else pd.DataFrame(index=dates)
        exposure = {
            "turnover": float(daily["turnover"].mean()),
            "long_exposure": float(daily["long"].mean()),
            "short_exposure": float(daily["short"].mean()),
            "positions": float((daily["n_long"] + daily["n_short"]).mean()),
        }
        for kind in ("gross", "net"):
            rows[f"{name} {kind}"] = _row(daily[kind], against) | exposure
        years[name] = per_year(daily["net"], against, gross=daily["gross"], turnover=daily["turnover"])
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
    )


def _row(returns: pd.Series, benchmarks: pd.DataFrame) -> dict[str, float]:
    row = risk_metrics(returns)
    for name, bench in benchmarks.items():
        excess = risk_metrics(returns, bench)
        row |= {
            f"excess_{name}": excess["excess_annual_return"],
            f"ir_{name}": excess["information_ratio"],
            f"excess_max_drawdown_{name}": excess["excess_max_drawdown"],
            f"excess_max_drawdown_sum_{name}": excess["excess_max_drawdown_sum"],
            f"tracking_error_{name}": excess["tracking_error"],
            f"beta_{name}": excess["beta"],
            f"alpha_{name}": excess["alpha"],
            f"alpha_t_{name}": excess["alpha_t"],
        }
    return row
