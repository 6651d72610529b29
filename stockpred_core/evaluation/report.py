"""The evaluation report: signal metrics, portfolios after costs against benchmarks, a per-year breakdown, plots
(matplotlib figures, no pyplot state) and a self-contained HTML file (templates/report.html.j2, jinja2).

    report = build_report(pred, returns, index_close=gspc_close, horizon=1)
    report.metrics()                  # flat {name: float} for MLflow / Dagster metadata
    report.figures()                  # {"cumulative_return": Figure, "ic": Figure, "drawdown": Figure}
    report.markdown()                 # the headline tables as Markdown (Dagster's MetadataValue.md)
    report.to_html("backtest.html")   # tables and PNG plots embedded in one file

`pred` holds scores known at each date's close ((date, ticker) series); `returns` daily close-to-close returns
(date x ticker, `portfolio.returns_from_prices`). Conventions: `core.portfolio` (timing, turnover, costs),
`core.performance` (annualization, drawdown), `core.backtest.signal_metrics` (IC, t-statistics).
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from stockpred_core.evaluation.backtest import SignalResult, signal_metrics
from stockpred_core.evaluation.performance import drawdown, per_year, risk_metrics, signal_by_year
from stockpred_core.evaluation.portfolio import (
    PortfolioResult,
    Strategy,
    equal_weight_returns,
    forward_returns_from_returns,
    index_returns,
    run_strategy,
    to_wide,
)

# Qlib's benchmark setting: TopK 50 / drop 5, 5 bps to open and 15 bps to close; beside it the plain top-k book and
# the long-short spread, which isolates the signal from the market.
DEFAULT_STRATEGIES = (
    Strategy("topk_dropout", k=50, n_drop=5),
    Strategy("topk", k=50),
    Strategy("long_short", k=50),
)
EQUAL_WEIGHT = "equal_weight"
PERCENT_COLUMNS = ("return", "cagr", "vol", "drawdown", "excess", "turnover", "tracking_error", "exposure")
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
        }
    return row


# Plots --------------------------------------------------------------------------------------------------------------


def cumulative_return_figure(
    daily: Mapping[str, pd.DataFrame],
    benchmarks: pd.DataFrame,
    excess_of: Iterable[str] = (),
    reference: str | None = None,
) -> Figure:
    """Cumulative return of each strategy (net solid, gross dashed) beside the benchmarks; with `excess_of` and a
    `reference` benchmark, a lower panel of those strategies' cumulative excess return over it (sum of daily r - b)."""
    excess_of = [name for name in excess_of if reference in benchmarks.columns]
    fig = Figure(figsize=(8, 6.5 if excess_of else 4.5))  # 800 px: fits the Dagster UI metadata column at 1920 px
    axes = fig.subplots(2 if excess_of else 1, 1, sharex=True, squeeze=False)[:, 0]
    top = axes[0]
    colors = [f"C{i}" for i in range(10)]
    for color, (name, frame) in zip(colors, daily.items(), strict=False):
        top.plot((1 + frame["net"]).cumprod() - 1, color=color, label=f"{name} net")
        top.plot((1 + frame["gross"]).cumprod() - 1, color=color, linestyle="--", linewidth=0.8, label=f"{name} gross")
    for shade, (name, series) in zip(("black", "grey", "silver"), benchmarks.items(), strict=False):
        top.plot((1 + series.dropna()).cumprod() - 1, color=shade, linewidth=1.2, label=str(name))
    top.set_title("Cumulative return")
    if excess_of:
        bottom = axes[1]
        bench = benchmarks[reference]
        for color, (name, frame) in zip(colors, daily.items(), strict=False):
            if name in excess_of:
                bottom.plot((frame["net"] - bench).dropna().cumsum(), color=color, label=f"{name} net")
                bottom.plot((frame["gross"] - bench).dropna().cumsum(), color=color, linestyle="--", linewidth=0.8)
        bottom.set_title(f"Cumulative excess return over {reference} (sum of daily excess; dashed: before costs)")
        bottom.legend(fontsize=7, loc="upper left")
    for ax in axes:
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    top.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    return fig


def ic_figure(ic: pd.Series, rank_ic: pd.Series, window: int = 20) -> Figure:
    """Daily rank IC as bars, with the rolling means of the rank IC and the IC over `window` dates."""
    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    ax.bar(rank_ic.index, rank_ic.to_numpy(), width=1.0, color="tab:blue", alpha=0.35, label="daily rank IC")
    ax.plot(rank_ic.rolling(window, min_periods=1).mean(), color="tab:blue", label=f"rank IC, {window}-day mean")
    ax.plot(ic.rolling(window, min_periods=1).mean(), color="tab:orange", label=f"IC, {window}-day mean")
    ax.axhline(float(rank_ic.mean()), color="tab:blue", linestyle=":", linewidth=1.0, label="mean rank IC")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_title("Information coefficient over time")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def drawdown_figure(returns: Mapping[str, pd.Series]) -> Figure:
    """Drawdown of cumulative wealth of each return series."""
    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    for i, (name, series) in enumerate(returns.items()):
        dd = drawdown(series.dropna())
        ax.plot(dd, color=f"C{i % 10}", linewidth=1.0, label=f"{name} (max {dd.min():.1%})")
    ax.set_title("Drawdown")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


# Tables and HTML -----------------------------------------------------------------------------------------------------


def _format(column: str, value: object) -> str:
    if not isinstance(value, int | float | np.number):
        return str(value)
    if not np.isfinite(value):
        return "-"
    if column in ("days", "positions") or column.startswith("n_"):
        return f"{value:,.0f}"
    if any(part in column for part in PERCENT_COLUMNS):
        return f"{value:.2%}"
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}"
    return f"{value:.3g}"


def formatted(table: pd.DataFrame, by_row: bool = False) -> pd.DataFrame:
    """A copy of a metrics table as display strings (returns, drawdowns, turnover in %), each value formatted by
    its column's name (or its row's, with by_row)."""
    return pd.DataFrame(
        {c: [_format(str(i if by_row else c), v) for i, v in table[c].items()] for c in table.columns},
        index=table.index.astype(str),
    )


def markdown_table(table: pd.DataFrame) -> str:
    shown = formatted(table)
    head = "| " + " | ".join([str(table.index.name or ""), *map(str, shown.columns)]) + " |"
    rule = "|" + "---|" * (len(shown.columns) + 1)
    body = ["| " + " | ".join([str(i), *row]) + " |" for i, row in zip(shown.index, shown.to_numpy(), strict=True)]
    return "\n".join([head, rule, *body])


class HtmlTable(NamedTuple):
    """A metrics table as the template shows it: display strings, escaped by the template."""

    caption: str
    index_name: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]


def _html_table(table: pd.DataFrame, caption: str, by_row: bool = False) -> HtmlTable:
    shown = formatted(table, by_row)
    rows = [(str(i), list(cells)) for i, cells in zip(shown.index, shown.to_numpy().tolist(), strict=True)]
    return HtmlTable(caption, str(table.index.name or ""), [str(c) for c in shown.columns], rows)


CONVENTIONS = (
    "Predictions are scores known at a date's close; positions are traded at that close and earn the next session's "
    "close-to-close return (no look-ahead). Turnover is two-sided, (value bought + value sold) / account value, as in "
    "Qlib (a full switch of a long-only book is 200%). Costs: {open} bps on buys, {close} bps on sells, net = gross - "
    "cost. Annual return = mean daily return x 252; Sharpe and IR = mean / std x sqrt(252); max drawdown on "
    "cumulative wealth; excess = daily strategy return - benchmark return. IC t-statistics use every h-th date "
    "(non-overlapping labels)."
)


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
            conventions=CONVENTIONS.format(open=open_bps, close=close_bps),
            notes=report.notes,
            signal=_html_table(signal, "Signal metrics", by_row=True),
            signal_per_year=_html_table(report.signal_per_year, "Signal by year"),
            summary=_html_table(report.summary.T, "Strategies (gross and net of costs) and benchmarks", by_row=True),
            per_year=[_html_table(table, f"{name}: by year (net of costs)") for name, table in report.per_year.items()],
            plots=plots,
        )
    )
