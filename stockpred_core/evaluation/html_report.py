"""The evaluation report as one self-contained HTML page: templates/report.html.j2 (jinja2), plots as embedded PNG."""

from __future__ import annotations

import base64
import functools
from typing import TYPE_CHECKING

import jinja2
import pandas as pd

from stockpred_core.evaluation.performance import HEDGE_MIN_PERIODS, HEDGE_WINDOW
from stockpred_core.evaluation.plots import figure_png
from stockpred_core.evaluation.tables import html_table

if TYPE_CHECKING:
    from stockpred_core.evaluation.report import EvaluationReport

CONVENTIONS = (
    "Predictions are scores known at a date's close; positions are traded at that close and earn the next session's "
    "close-to-close return (no look-ahead). Turnover is two-sided, (value bought + value sold) / account value, as in "
    "Qlib (a full switch of a long-only book is 200%). Costs: {open} bps on buys, {close} bps on sells, net = gross - "
    "cost. Annual return = mean daily return x 252; Sharpe and IR = mean / std x sqrt(252); max drawdown on "
    "cumulative wealth; excess = daily strategy return - benchmark return. Beta and alpha: least-squares fit of the "
    "daily returns on the benchmark's, alpha annualized (x 252) with its t-statistic (alpha_t); for the long-short "
    "and beta-neutral books only these, no excess. Cost drag = mean daily cost x 252 (annual return gross - net). "
    "Beta-neutral book: the first long-only book short its ex-ante beta of the index ({window}-session regression "
    "on the previous days, 1.0 before {min_periods}), net of the book's costs; the hedge's own trading is not "
    "charged. IC t-statistics use every h-th date (non-overlapping labels)."
)

PER_YEAR = "by year, net of costs (gross_return and gross_alpha before costs; cost_drag = mean daily cost x 252)"


@functools.cache
def _templates() -> jinja2.Environment:
    """The report's templates (package data), loaded on first use: importing this module needs no template files.
    Autoescaped: titles, notes and ticker names are data, never markup."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("stockpred_core.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def html_report(report: EvaluationReport, dpi: int = 100) -> str:
    """The report as one self-contained HTML page (templates/report.html.j2), plots as embedded PNG."""
    strategies = [p.strategy for p in report.portfolios.values()]
    costs = {(s.open_cost_bps, s.close_cost_bps) for s in strategies}
    open_bps, close_bps = (", ".join(f"{c[i]:g}" for c in sorted(costs)) for i in (0, 1))
    signal = pd.DataFrame({k: [v] for k, v in report.signal.metrics.items()}, index=["signal"]).T
    signal.columns = ["value"]
    plots = [(name, base64.b64encode(figure_png(figure, dpi)).decode()) for name, figure in report.figures().items()]
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            title=report.title,
            period=report.period,
            horizon=report.horizon,
            n_predictions=int(report.signal.metrics["n_predictions"]),
            n_dates=int(report.signal.metrics["n_dates"]),
            conventions=CONVENTIONS.format(
                open=open_bps, close=close_bps, window=HEDGE_WINDOW, min_periods=HEDGE_MIN_PERIODS
            ),
            notes=report.notes,
            signal=html_table(signal, "Signal metrics", by_row=True),
            signal_per_year=html_table(report.signal_per_year, "Signal by year"),
            summary=html_table(report.summary.T, "Strategies (gross and net of costs) and benchmarks", by_row=True),
            per_year=[html_table(table, f"{name}: {PER_YEAR}") for name, table in report.per_year.items()],
            plots=plots,
        )
    )
