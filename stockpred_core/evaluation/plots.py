"""The report's plots as matplotlib figures (no pyplot state): cumulative return, information coefficient, drawdown."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from stockpred_core.evaluation.performance import drawdown


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
